#include "agent/engine/local_reply.h"

#include "absl/strings/str_cat.h"
#include "agent/common/status.h"

namespace seccomp_agent {

namespace v1 = ::seccompagent::v1;

LocalReply LocalReply::Allow() {
  LocalReply r;
  r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  r.effect = Effect::kAllowed;
  r.result = "continue";
  return r;
}

LocalReply LocalReply::Deny(int error) {
  LocalReply r;
  r.error = error;
  r.effect = Effect::kDenied;
  r.result = ErrnoName(error);
  return r;
}

LocalReply LocalReply::Return(int64_t value) {
  LocalReply r;
  r.val = value;
  r.effect = Effect::kReturned;
  r.result = absl::StrCat(value);
  return r;
}

seccomp_notif_resp LocalReply::Resp(uint64_t id) const {
  seccomp_notif_resp resp{};
  resp.id = id;
  resp.flags = flags;
  resp.error = -error;
  resp.val = val;
  return resp;
}

std::optional<LocalReply> LocalReplyFor(const v1::Action& action) {
  switch (action.kind_case()) {
    case v1::Action::kAllow:
    case v1::Action::kLog:
      return LocalReply::Allow();
    case v1::Action::kDeny:
      return LocalReply::Deny(action.deny().errno_code());
    case v1::Action::kReturn:
      return LocalReply::Return(action.return_().value());
    default:
      return std::nullopt;
  }
}

}  // namespace seccomp_agent
