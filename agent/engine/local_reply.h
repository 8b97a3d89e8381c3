// The one mapping from a local action (allow, log, deny, return) to its
// seccomp reply and what the decision log shows. The engine uses it on the
// leader for a rule's action, the router (action_router.cc) for what a
// plugin decided and for a plugin's on_error. Pure.
#ifndef SECCOMP_AGENT_ENGINE_LOCAL_REPLY_H_
#define SECCOMP_AGENT_ENGINE_LOCAL_REPLY_H_

#include <linux/seccomp.h>

#include <cstdint>
#include <optional>
#include <string>

#include "proto/seccompagent/v1/policy.pb.h"

namespace seccomp_agent {

// What a reply did, for the counters.
enum class Effect { kAllowed, kDenied, kReturned, kSubstituted };

struct LocalReply {
  uint32_t flags = 0;  // SECCOMP_USER_NOTIF_FLAG_CONTINUE for allow
  int error = 0;       // positive errno for deny
  int64_t val = 0;     // the spoofed return value
  Effect effect = Effect::kAllowed;
  std::string result;  // the decision log's result: "continue", "EPERM", "12"

  static LocalReply Allow();
  static LocalReply Deny(int error);
  static LocalReply Return(int64_t value);
  // The reply to send for notification `id`.
  seccomp_notif_resp Resp(uint64_t id) const;
};

// allow and log: Allow; deny: Deny(errno); return: Return(value);
// nullopt for every other action (substitutions, plugins).
std::optional<LocalReply> LocalReplyFor(const ::seccompagent::v1::Action& action);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_LOCAL_REPLY_H_
