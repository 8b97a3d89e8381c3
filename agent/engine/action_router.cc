#include "agent/engine/action_router.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace seccomp_agent {

void ActionRouter::Handle(int listener, const seccomp_notif& notif, const SyscallEvent& ev,
                          const v1::Action& action, int rule_index, Done done) {
  switch (action.kind_case()) {
    case v1::Action::kRedirectOpen:
    case v1::Action::kRewriteBind:
    case v1::Action::kReplaceWrite: {
      absl::StatusOr<injector::Outcome> out = injector_->Apply(listener, notif, ev, action);
      if (!out.ok()) return done(out.status());
      Outcome o;
      o.result = out->result;
      o.backend = std::string(out->backend);
      o.task_gone = out->task_gone;
      return done(o);
    }
    case v1::Action::kPlugin:
      return done(absl::UnavailableError(
          absl::StrCat("plugin \"", action.plugin().name(), "\" is not connected")));
    default:
      return done(absl::InvalidArgumentError(
          absl::StrCat("action ", ActionKindName(action), " is not routed")));
  }
}

}  // namespace seccomp_agent
