// Routes the actions the engine does not answer itself:
//  * substitutions (redirect_open, rewrite_bind, replace_write) go to the
//    injector (kernel NOTIF_INJECT, or emulation);
//  * `plugin: NAME` goes to the gRPC plugin dispatcher, asynchronously; the
//    plugin's validated decision is then carried out here: allow, deny,
//    return, a substitution, or a raw inject. A plugin that defers
//    (no_opinion) hands over to the local rules after its own rule, which
//    is how plugins chain (the next matching rule may name the next
//    plugin). A plugin error applies the plugin's on_error: deny with its
//    errno (the default: fail closed), allow, or the local rules after its
//    rule.
#ifndef SECCOMP_AGENT_ENGINE_ACTION_ROUTER_H_
#define SECCOMP_AGENT_ENGINE_ACTION_ROUTER_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "agent/engine/apply_action.h"
#include "agent/engine/engine.h"
#include "agent/engine/local_reply.h"
#include "agent/injector/injector.h"
#include "agent/plugin/dispatcher.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent {

class ActionRouter : public ActionHandler {
 public:
  // `plugins` may be null (no plugins declared). Neither is owned.
  ActionRouter(UnotifyInterface& unotify, injector::Injector* injector,
               plugin::PluginDispatcher* plugins);

  void Handle(int listener, const seccomp_notif& notif, const SyscallEvent& ev,
              const v1::Action& action, int rule_index, const CompiledPolicy& policy,
              Done done) override;
  // A plugin rule whose decision is in the dispatcher's cache and is a
  // plain reply (allow, deny, return): the engine sends it. Allocates
  // nothing (the log's backend label is built once per plugin).
  bool TryQuickReply(const SyscallEvent& ev, const v1::Action& action, QuickReply* out) override;

 private:
  // Carries out `action`; `via` names who decided ("" for a local rule,
  // "plugin:NAME" for a plugin) for the decision log.
  void Execute(int listener, const seccomp_notif& notif, const SyscallEvent& ev,
               const v1::Action& action, int rule_index, const CompiledPolicy& policy,
               const std::string& via, int depth, Done done);
  // The local rules after `rule_index`.
  void ContinueLocal(int listener, const seccomp_notif& notif, const SyscallEvent& ev,
                     int rule_index, const CompiledPolicy& policy, const std::string& via,
                     int depth, Done done);
  // Sends a plain reply (CONTINUE, an errno or a value).
  void Reply(int listener, uint64_t id, LocalReply reply, const std::string& via,
             const std::string& action_name, Done done);

  UnotifyInterface& unotify_;
  injector::Injector* injector_;
  plugin::PluginDispatcher* plugins_;
  // Per plugin name: the dispatcher's plugin (found once) and
  // "plugin:NAME (cached)" for QuickReply::backend.
  struct QuickPlugin {
    plugin::PluginState* plugin;
    std::string label;
  };
  absl::flat_hash_map<std::string, QuickPlugin> quick_;
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_ACTION_ROUTER_H_
