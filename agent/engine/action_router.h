// Routes the actions the engine does not answer itself: substitutions go to
// the injector (kernel NOTIF_INJECT or emulation), plugin actions to the
// gRPC plugin dispatcher (when one is configured).
#ifndef SECCOMP_AGENT_ENGINE_ACTION_ROUTER_H_
#define SECCOMP_AGENT_ENGINE_ACTION_ROUTER_H_

#include "agent/engine/engine.h"
#include "agent/injector/injector.h"

namespace seccomp_agent {

class ActionRouter : public ActionHandler {
 public:
  explicit ActionRouter(injector::Injector* injector) : injector_(injector) {}

  void Handle(int listener, const seccomp_notif& notif, const SyscallEvent& ev,
              const v1::Action& action, int rule_index, Done done) override;

 private:
  injector::Injector* injector_;
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_ACTION_ROUTER_H_
