// The `precreate` stage: config.json in, config.json out, with the chosen
// policy merged into linux.seccomp. Pure (no I/O besides reading the policy
// file and checking the agent socket), so tests call it directly.
//
// Merge rules, for each syscall S the policy decides (agent/policy/compiler.h):
//  * The base profile is linux.seccomp; when absent the hook creates
//    {"defaultAction":"SCMP_ACT_ALLOW"} with no `architectures`: the runtime
//    then filters the native ABI only and refuses calls through any other
//    ABI (int 0x80, x32) with its bad-arch action, so a compiled deny cannot
//    be bypassed through i386 syscalls. Nothing else is added: the hook
//    enforces the policy, it does not invent a sandbox.
//  * What the base profile does with S decides the merge:
//      (a) S allowed unconditionally (only unconditional ALLOW/LOG rules name
//          it, or none does and defaultAction is ALLOW/LOG): S is taken out
//          of those rules (a rule left with no names is dropped; everything
//          else in it is kept) and the compiler's rules for S are appended.
//      (b) S refused unconditionally (no rule names it and defaultAction is
//          not ALLOW/LOG, or only unconditional non-allow rules name it):
//          left alone. The policy only narrows what the profile allows.
//      (c) S allowed only under argument conditions (conditional ALLOW rules,
//          defaultAction not ALLOW/LOG): those rules keep their conditions
//          and become SCMP_ACT_NOTIFY (S split into its own copy when the
//          rule names other syscalls); every rule of the policy for S stays
//          with the agent, which sees only the calls the profile allowed.
//      anything else (e.g. conditional ERRNO rules under an ALLOW default,
//          or mixed actions) is refused with an error naming S.
//  * Then: if any syscall is NOTIFY, listenerPath = the agent socket and
//    listenerMetadata = "seccomp-agent.io/policy=NAME". A NOTIFY on a
//    syscall the target runtime needs for the hand-over (hook_config.h,
//    ForbiddenNotifySyscalls) is an error.
//  * Idempotent: a syscall whose rules already are exactly what the hook
//    writes (same compiler output, or all NOTIFY under our listenerPath) is
//    left as it is, so running the hook on its own output changes nothing.
//  * Refused: invalid JSON or not an object; a listenerPath that is not the
//    agent socket; a listenerMetadata for another policy; SCMP_ACT_NOTIFY
//    rules with no listenerPath; crun's run.oci.seccomp.receiver annotation
//    naming another socket; a policy name that is not a plain file name; a
//    policy that does not load.
//  * Every field outside linux.seccomp comes out as it came in (key order
//    and 64-bit integers exact: nlohmann::ordered_json keeps int64/uint64).
#ifndef SECCOMP_AGENT_OCI_HOOK_PRECREATE_H_
#define SECCOMP_AGENT_OCI_HOOK_PRECREATE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/policy/compiler.h"
#include "agent/policy/policy.h"
#include "oci-hook/hook_config.h"

namespace seccomp_agent::hook {

struct PrecreateResult {
  std::string output;              // the new config.json (one JSON text + "\n")
  std::string policy;              // "" when no policy applied
  std::vector<std::string> notes;  // human-readable lines for stderr
  std::vector<std::string> notify_syscalls;
  std::vector<std::string> kernel_syscalls;  // syscalls with compiled rules
};

// Loads policy NAME; the default reads `<policy_dir>/NAME.yaml` or
// `NAME.json` (PolicyFileIn, as the agent's --policy_dir does).
using PolicyLoader =
    std::function<absl::StatusOr<std::shared_ptr<const CompiledPolicy>>(const std::string& name)>;
PolicyLoader FilePolicyLoader(const std::string& policy_dir);

// Whether the agent is reachable at `socket` (the default checks that the
// path is a unix socket); used with on_agent_down.
using AgentProbe = std::function<bool(const std::string& socket)>;
bool SocketExists(const std::string& socket);

absl::StatusOr<PrecreateResult> Precreate(absl::string_view config_json, const HookConfig& config,
                                          const PolicyLoader& loader, const AgentProbe& probe);

}  // namespace seccomp_agent::hook

#endif  // SECCOMP_AGENT_OCI_HOOK_PRECREATE_H_
