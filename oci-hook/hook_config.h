// The hook's own configuration file (JSON or YAML; default
// /etc/seccomp-agent/hook.json):
//
//   agent_socket: /run/seccomp-agent/agent.sock  # linux.seccomp.listenerPath
//   hook_socket: /run/seccomp-agent/hook.sock  # createRuntime/poststop messages
//   policy_dir: /etc/seccomp-agent/policies      # policy NAME -> NAME.yaml
//   selectors:                                   # first match wins
//     - {annotations: {"io.kubernetes.pod.namespace": "prod-*"}, policy: strict}
//     (syntax and matching: agent/policy/selector.h, shared with the agent,
//     which reads this file's policy_dir and selectors with --hook_config)
//   compile: true          # put kernel-decidable rules into the profile
//   on_agent_down: fail    # fail | pass
//   runtime: any           # any | runc | crun (which NOTIFY limits apply)
//   hook_timeout_ms: 2000
//
// Every key is optional; unknown keys are errors. The annotation
// `seccomp-agent.io/policy: NAME` on a container always wins over selectors.
// A selector's values are globs (FlatGlob: * ? [..]); a selector with no
// condition matches every container.
#ifndef SECCOMP_AGENT_OCI_HOOK_HOOK_CONFIG_H_
#define SECCOMP_AGENT_OCI_HOOK_HOOK_CONFIG_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/policy/selector.h"

namespace seccomp_agent::hook {

inline constexpr char kDefaultHookConfigPath[] = "/etc/seccomp-agent/hook.json";
using ::seccomp_agent::CheckPolicyName;
using ::seccomp_agent::kPolicyAnnotation;

enum class OnAgentDown { kFail, kPass };
// Which runtime will run the container, for the syscalls a runtime cannot
// hand to an agent (see ForbiddenNotifySyscalls).
enum class TargetRuntime { kAny, kRunc, kCrun };

using Selector = ::seccomp_agent::PolicySelector;

struct HookConfig {
  std::string agent_socket = "/run/seccomp-agent/agent.sock";
  std::string hook_socket = "/run/seccomp-agent/hook.sock";
  std::string policy_dir = "/etc/seccomp-agent/policies";
  std::vector<Selector> selectors;
  bool compile = true;
  OnAgentDown on_agent_down = OnAgentDown::kFail;
  TargetRuntime runtime = TargetRuntime::kAny;
  int hook_timeout_ms = 2000;
};

// Parses config text (JSON or YAML). Errors name `source` and the key.
absl::StatusOr<HookConfig> ParseHookConfig(absl::string_view text, absl::string_view source);

// Reads `path`. When the file does not exist and `must_exist` is false the
// defaults are returned (the default path is optional; a path given with
// --config is not).
absl::StatusOr<HookConfig> LoadHookConfig(const std::string& path, bool must_exist);

// The policy for a container with these annotations: the policy annotation,
// else the first matching selector (MatchSelectors, without id and
// metadata, which precreate does not know); nullopt when none applies.
std::optional<std::string> SelectPolicy(const HookConfig& config,
                                        const std::map<std::string, std::string>& annotations);

// Syscalls that must never be SCMP_ACT_NOTIFY for `runtime`, because the
// runtime itself makes them between installing the filter and handing the
// listener over (the call would wait for an agent that has no fd yet):
//   runc 1.1: write (runc refuses it outright: "SCMP_ACT_NOTIFY cannot be
//             used for the write syscall").
//   crun 1.8: none (checked here: crun runs with NOTIFY on write and on
//             sendmsg; runtime_e2e_test runs a write-NOTIFY policy on it).
//   any:      the union, i.e. write (the runtime is not known at precreate).
std::set<std::string> ForbiddenNotifySyscalls(TargetRuntime runtime);
const char* TargetRuntimeName(TargetRuntime runtime);

}  // namespace seccomp_agent::hook

#endif  // SECCOMP_AGENT_OCI_HOOK_HOOK_CONFIG_H_
