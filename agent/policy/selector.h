// Which named policy a container gets: the one implementation the OCI hook
// (at precreate) and the agent (at handoff) share.
//
// Names: a policy NAME is the file NAME.yaml (or NAME.json) in the policy
// directory, so a name is a plain file name stem.
// Selectors (hook config `selectors:`; the agent reads the same file):
//   - {annotations: {"io.kubernetes.pod.namespace": "prod-*"}, policy: strict}
//   - {id: "build-*", metadata: "tenant=*", policy: builds}
// Every condition given must match (FlatGlob: * ? [..]); a selector with no
// condition matches every container; the first matching selector wins. At
// precreate the hook knows only the annotations: a selector with an `id` or
// `metadata` condition matches only in the agent.
#ifndef SECCOMP_AGENT_POLICY_SELECTOR_H_
#define SECCOMP_AGENT_POLICY_SELECTOR_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace YAML {
class Node;
}

namespace seccomp_agent {

// The annotation naming a container's policy.
inline constexpr char kPolicyAnnotation[] = "seccomp-agent.io/policy";

struct PolicySelector {
  std::map<std::string, std::string> annotations;  // key -> glob
  std::string policy;
  std::optional<std::string> id;        // glob on the OCI container id
  std::optional<std::string> metadata;  // glob on the listenerMetadata
};

// What a selector is matched against. `id` and `metadata` are nullopt where
// they are not known (the hook at precreate).
struct SelectorInput {
  const std::map<std::string, std::string>* annotations = nullptr;
  std::optional<absl::string_view> id;
  std::optional<absl::string_view> metadata;
};

// A selectors list (YAML/JSON sequence). Errors name `source` and the entry,
// e.g. "hook.json: selectors[1].policy: ...".
absl::StatusOr<std::vector<PolicySelector>> ParseSelectors(const YAML::Node& list,
                                                           absl::string_view source);

// The policy of the first selector that matches; nullopt when none does.
std::optional<std::string> MatchSelectors(const std::vector<PolicySelector>& selectors,
                                          const SelectorInput& in);

// A policy name is a file name stem: [A-Za-z0-9][A-Za-z0-9_.-]*, at most
// 200 bytes, so it can never leave the policy directory.
absl::Status CheckPolicyName(absl::string_view name);

// The file of policy `name` in `dir`: NAME.yaml or NAME.json; "" when
// neither exists; an error when both do (which one is meant?).
absl::StatusOr<std::string> PolicyFileIn(absl::string_view dir, absl::string_view name);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_POLICY_SELECTOR_H_
