#include "agent/engine/action_router.h"

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/common/status.h"

namespace seccomp_agent {
namespace {

// Every rule can name a plugin that defers to the next one; a policy with
// more nested hand-offs than this is refused at run time (fail closed).
constexpr int kMaxDepth = 64;

// What the injector did, as the engine counts and logs it; `via` ("" for a
// local rule) names who decided.
ActionHandler::Outcome Substituted(const injector::Outcome& out, const std::string& via,
                                   const std::string& action_name) {
  ActionHandler::Outcome o;
  o.result = out.result;
  o.backend =
      via.empty() ? std::string(out.backend) : absl::StrCat(via, " ", std::string(out.backend));
  o.action = action_name;
  o.task_gone = out.task_gone;
  return o;
}

// Who decided, for the decision log: "plugin:NAME", "plugin:NAME (cached)".
std::string PluginLabel(absl::string_view name, bool cached) {
  return absl::StrCat("plugin:", name, cached ? " (cached)" : "");
}

}  // namespace

ActionRouter::ActionRouter(UnotifyInterface& unotify, injector::Injector* injector,
                           plugin::PluginDispatcher* plugins)
    : unotify_(unotify), injector_(injector), plugins_(plugins) {
  if (plugins_ == nullptr) return;
  for (const std::string& name : plugins_->Names()) {
    quick_[name] = QuickPlugin{plugins_->Find(name), PluginLabel(name, true)};
  }
}

void ActionRouter::Handle(int listener, const seccomp_notif& notif, const SyscallEvent& ev,
                          const v1::Action& action, int rule_index, const CompiledPolicy& policy,
                          Done done) {
  Execute(listener, notif, ev, action, rule_index, policy, "", 0, std::move(done));
}

bool ActionRouter::TryQuickReply(const SyscallEvent& ev, const v1::Action& action,
                                 QuickReply* out) {
  if (action.kind_case() != v1::Action::kPlugin || plugins_ == nullptr) return false;
  const std::string& name = action.plugin().name();
  auto quick = quick_.find(name);
  if (quick == quick_.end()) return false;  // unknown: Handle says so
  plugin::PlainDecision d;
  if (!plugins_->DecideCached(quick->second.plugin, ev, &d)) return false;
  using K = plugin::PlainDecision::Kind;
  out->reply = d.kind == K::kDeny     ? LocalReply::Deny(d.errno_code)
               : d.kind == K::kReturn ? LocalReply::Return(d.value)
                                      : LocalReply::Allow();
  out->action = d.kind == K::kDeny ? "deny" : d.kind == K::kReturn ? "return" : "allow";
  out->backend = quick->second.label;
  return true;
}

void ActionRouter::Reply(int listener, uint64_t id, LocalReply reply, const std::string& via,
                         const std::string& action_name, Done done) {
  absl::Status s = unotify_.Send(listener, reply.Resp(id));
  Outcome o;
  o.backend = via;
  o.action = action_name;
  o.effect = reply.effect;
  if (!s.ok()) {
    if (ErrnoOf(s) != ENOENT) return done(s);
    o.task_gone = true;
    o.result = "task-gone";
    return done(o);
  }
  o.result = std::move(reply.result);
  done(o);
}

void ActionRouter::ContinueLocal(int listener, const seccomp_notif& notif, const SyscallEvent& ev,
                                 int rule_index, const CompiledPolicy& policy,
                                 const std::string& via, int depth, Done done) {
  CompiledPolicy::Verdict v = policy.Evaluate(ev, rule_index < 0 ? INT32_MAX : rule_index + 1);
  std::string rule(v.rule);
  Execute(listener, notif, ev, *v.action, v.rule_index, policy, via, depth + 1,
          [rule, done](absl::StatusOr<Outcome> out) {
            if (out.ok() && out->rule.empty()) out->rule = rule;
            done(std::move(out));
          });
}

void ActionRouter::Execute(int listener, const seccomp_notif& notif, const SyscallEvent& ev,
                           const v1::Action& action, int rule_index, const CompiledPolicy& policy,
                           const std::string& via, int depth, Done done) {
  if (depth > kMaxDepth) {
    return done(absl::FailedPreconditionError("plugin hand-offs nested too deeply"));
  }
  const std::string name = ActionKindName(action);
  if (std::optional<LocalReply> local = LocalReplyFor(action)) {
    return Reply(listener, notif.id, std::move(*local), via, name, std::move(done));
  }
  switch (action.kind_case()) {
    case v1::Action::kRedirectOpen:
    case v1::Action::kRewriteBind:
    case v1::Action::kReplaceWrite:
    case v1::Action::kSysinfo:
    case v1::Action::kMknod:
    case v1::Action::kMount:
    case v1::Action::kSetxattr: {
      const auto& r = policy.proto().redirect_roots();
      absl::StatusOr<injector::Outcome> out = ApplyAction(
          *injector_, listener, notif, ev, action, std::vector<std::string>(r.begin(), r.end()));
      if (!out.ok()) return done(out.status());
      return done(Substituted(*out, via, name));
    }
    case v1::Action::kPlugin:
      break;
    default:
      return done(
          absl::InvalidArgumentError(absl::StrCat("action ", name, " cannot be carried out")));
  }

  // A plugin decides, asynchronously. `ev`, `notif`'s listener and `policy`
  // stay alive until `done` runs (the engine's pending decision owns them).
  const std::string plugin_name = action.plugin().name();
  if (plugins_ == nullptr) {
    return done(
        absl::UnavailableError(absl::StrCat("plugin \"", plugin_name, "\" is not configured")));
  }
  const SyscallEvent* evp = &ev;
  const CompiledPolicy* pol = &policy;
  seccomp_notif n = notif;
  plugins_->Decide(
      plugin_name, ev,
      [this, listener, n, evp, pol, rule_index, depth, plugin_name, done](plugin::PluginResult r) {
        std::string who = PluginLabel(plugin_name, r.from_cache);
        switch (r.kind) {
          case plugin::PluginResult::Kind::kAction:
            return Execute(listener, n, *evp, r.action, rule_index, *pol, who, depth + 1, done);
          case plugin::PluginResult::Kind::kInject: {
            injector::Substitute sub;
            sub.nr = static_cast<int64_t>(r.inject.nr());
            for (int i = 0; i < 6 && i < r.inject.args_size(); ++i) sub.args[i] = r.inject.args(i);
            sub.args_in_buf_mask = r.inject.args_in_buf_mask();
            sub.buf = r.inject.buf();
            absl::StatusOr<injector::Outcome> out = injector_->Inject(listener, n, sub);
            if (!out.ok()) return done(out.status());
            return done(Substituted(*out, who, "inject"));
          }
          case plugin::PluginResult::Kind::kNoOpinion:
            return ContinueLocal(listener, n, *evp, rule_index, *pol, who + " no-opinion", depth,
                                 done);
          case plugin::PluginResult::Kind::kError:
            break;
        }
        // on_error; the error is in the decision log's backend field.
        std::string why = absl::StrCat(who, " error ", plugin::ErrorKindName(r.error_kind));
        switch (r.on_error) {
          case v1::PluginConfig::ALLOW:
            return Reply(listener, n.id, LocalReply::Allow(), why, "allow", done);
          case v1::PluginConfig::LOCAL:
            return ContinueLocal(listener, n, *evp, rule_index, *pol, why, depth, done);
          default:
            return Reply(listener, n.id, LocalReply::Deny(r.error_errno), why, "deny", done);
        }
      });
}

}  // namespace seccomp_agent
