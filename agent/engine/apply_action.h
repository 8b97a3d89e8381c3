// A substitution action carried out: PlanAction (substitute_plan.h) +
// Injector::Inject, with redirect_open's checks in the task's root. The
// router's side of the injector (the injector knows nothing of policies).
#ifndef SECCOMP_AGENT_ENGINE_APPLY_ACTION_H_
#define SECCOMP_AGENT_ENGINE_APPLY_ACTION_H_

#include <linux/seccomp.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/injector/injector.h"
#include "agent/model/event.h"
#include "proto/seccompagent/v1/policy.pb.h"

namespace seccomp_agent {

// redirect_open (issue 12 item 5): the map is looked up on the path as
// resolved in the task's root; a call the map has no entry for is answered
// EACCES (the original is never opened by the agent); the target is
// resolved in the task's root (from its cwd/dirfd when relative) and must
// stay under the redirect root that contains it, and the substitute carries
// that absolute resolved path (AT_FDCWD), so the kernel backend opens what
// was checked, not what a peer thread's later cwd/dirfd/symlink change
// points to (issue 13 item 5); the emulation opens it RESOLVE_BENEATH that
// root (safe_open.h).
absl::StatusOr<injector::Outcome> ApplyAction(injector::Injector& injector, int listener,
                                              const seccomp_notif& notif, const SyscallEvent& ev,
                                              const ::seccompagent::v1::Action& action,
                                              const std::vector<std::string>& redirect_roots = {});

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_APPLY_ACTION_H_
