#include "oci-hook/precreate.h"

#include <errno.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/status.h"
#include "nlohmann/json.hpp"
#include "oci-hook/hook_protocol.h"

namespace seccomp_agent::hook {
namespace {

using ojson = nlohmann::ordered_json;

constexpr char kCrunReceiverAnnotation[] = "run.oci.seccomp.receiver";

bool AllowLike(const std::string& action) {
  return action == "SCMP_ACT_ALLOW" || action == "SCMP_ACT_LOG";
}

nlohmann::json Canon(const ojson& o) { return nlohmann::json::parse(o.dump()); }

std::string ActionOf(const ojson& rule) {
  auto a = rule.find("action");
  return a != rule.end() && a->is_string() ? a->get<std::string>() : "";
}

bool Conditional(const ojson& rule) {
  auto a = rule.find("args");
  return a != rule.end() && a->is_array() && !a->empty();
}

bool Names(const ojson& rule, const std::string& s) {
  auto n = rule.find("names");
  if (n == rule.end() || !n->is_array()) return false;
  for (const ojson& e : *n) {
    if (e.is_string() && e.get<std::string>() == s) return true;
  }
  return false;
}

void RemoveName(ojson* rule, const std::string& s) {
  ojson& n = (*rule)["names"];
  ojson kept = ojson::array();
  for (ojson& e : n) {
    if (!(e.is_string() && e.get<std::string>() == s)) kept.push_back(std::move(e));
  }
  n = std::move(kept);
}

enum class Category { kTake, kRefused, kConditional, kDone, kDoneNotify };

// Phase 1: the container's annotations (string values only).
absl::StatusOr<std::map<std::string, std::string>> ReadAnnotations(const ojson& cfg) {
  std::map<std::string, std::string> annotations;
  auto a = cfg.find("annotations");
  if (a == cfg.end() || a->is_null()) return annotations;
  if (!a->is_object())
    return absl::InvalidArgumentError("config.json: annotations: expected an object");
  for (auto it = a->begin(); it != a->end(); ++it) {
    if (!it.value().is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config.json: annotations[\"", it.key(), "\"]: expected a string"));
    }
    annotations[it.key()] = it.value().get<std::string>();
  }
  return annotations;
}

// Phase 2: linux.seccomp as the hook finds it, checked for another agent.
struct BaseProfile {
  bool had_seccomp = false;
  ojson seccomp;
  SeccompAction dflt;
  std::optional<std::string> listener;  // listenerPath (the agent socket) when set
  ojson rules;                          // linux.seccomp.syscalls
};

absl::Status CheckListener(const ojson& seccomp, const HookConfig& config, const std::string& name,
                           BaseProfile* base) {
  if (auto lp = seccomp.find("listenerPath"); lp != seccomp.end()) {
    if (!lp->is_string())
      return absl::InvalidArgumentError(
          "config.json: linux.seccomp.listenerPath: expected a string");
    base->listener = lp->get<std::string>();
    if (*base->listener != config.agent_socket) {
      return absl::FailedPreconditionError(
          absl::StrCat("config.json: linux.seccomp.listenerPath is already ", *base->listener,
                       " (another seccomp agent?), not the agent socket ", config.agent_socket,
                       "; refusing to take its listener over"));
    }
  }
  if (auto md = seccomp.find("listenerMetadata"); md != seccomp.end()) {
    const std::string want = ListenerMetadataFor(name);
    if (!md->is_string() || md->get<std::string>() != want) {
      return absl::FailedPreconditionError(
          absl::StrCat("config.json: linux.seccomp.listenerMetadata is ", md->dump(),
                       ", expected \"", want, "\" (set up for another policy or by another tool)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadRules(const ojson& seccomp, BaseProfile* base) {
  base->rules = seccomp.contains("syscalls") ? seccomp["syscalls"] : ojson::array();
  if (!base->rules.is_array())
    return absl::InvalidArgumentError("config.json: linux.seccomp.syscalls: expected an array");
  for (const ojson& r : base->rules) {
    if (!r.is_object()) {
      return absl::InvalidArgumentError(
          "config.json: linux.seccomp.syscalls: every entry must be an object");
    }
    if (ActionOf(r) == "SCMP_ACT_NOTIFY" && !base->listener) {
      return absl::FailedPreconditionError(
          absl::StrCat("config.json: linux.seccomp has SCMP_ACT_NOTIFY rules (", r.dump(),
                       ") but no listenerPath; another seccomp agent owns this container"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BaseProfile> ReadBaseProfile(ojson& cfg, const HookConfig& config,
                                            const std::string& name) {
  if (cfg.contains("linux") && !cfg["linux"].is_object()) {
    return absl::InvalidArgumentError("config.json: linux: expected an object");
  }
  BaseProfile base;
  base.had_seccomp = cfg.contains("linux") && cfg["linux"].contains("seccomp");
  base.seccomp =
      base.had_seccomp ? cfg["linux"]["seccomp"] : ojson{{"defaultAction", "SCMP_ACT_ALLOW"}};
  const ojson& seccomp = base.seccomp;
  if (!seccomp.is_object())
    return absl::InvalidArgumentError("config.json: linux.seccomp: expected an object");
  auto da = seccomp.find("defaultAction");
  if (da == seccomp.end() || !da->is_string()) {
    return absl::InvalidArgumentError("config.json: linux.seccomp.defaultAction: required string");
  }
  base.dflt = SeccompAction{da->get<std::string>(), 0};
  if (base.dflt.action == "SCMP_ACT_ERRNO") {
    auto e = seccomp.find("defaultErrnoRet");
    base.dflt.errno_ret =
        e != seccomp.end() && e->is_number_unsigned() ? e->get<uint32_t>() : EPERM;
  }
  if (base.dflt.action == "SCMP_ACT_NOTIFY") {
    return absl::InvalidArgumentError(
        "config.json: linux.seccomp.defaultAction SCMP_ACT_NOTIFY is not supported");
  }
  SA_RETURN_IF_ERROR(CheckListener(seccomp, config, name, &base));
  SA_RETURN_IF_ERROR(ReadRules(seccomp, &base));
  return base;
}

// Phase 3: what the merge does with each syscall the policy decides.
struct Merge {
  std::map<std::string, Category> cat;
  std::set<std::string> notify;
};

// Whether the base rules naming sp.syscall are already what the hook writes.
bool AlreadyMerged(const SyscallPlan& sp, const std::vector<const ojson*>& named) {
  if (named.empty() || named.size() != sp.rules.size()) return false;
  for (size_t i = 0; i < named.size(); ++i) {
    if (Canon(*named[i]) != Canon(sp.rules[i].ToJson())) return false;
  }
  return true;
}

absl::StatusOr<Category> CategoryOf(const SyscallPlan& sp, const std::vector<const ojson*>& named,
                                    const BaseProfile& base, const std::string& name) {
  const std::string& s = sp.syscall;
  std::set<std::string> uncond, cond;
  for (const ojson* r : named) {
    if (ActionOf(*r) == "SCMP_ACT_NOTIFY") {
      return absl::FailedPreconditionError(
          absl::StrCat("config.json: linux.seccomp already sends ", s,
                       " to the agent in a way this hook configuration would not write (",
                       r->dump(), "); was it set up with other settings?"));
    }
    (Conditional(*r) ? cond : uncond).insert(ActionOf(*r));
  }
  const bool uncond_allow = !uncond.empty() && std::all_of(uncond.begin(), uncond.end(), AllowLike);
  const bool uncond_deny = !uncond.empty() && std::none_of(uncond.begin(), uncond.end(), AllowLike);
  if (named.empty()) return AllowLike(base.dflt.action) ? Category::kTake : Category::kRefused;
  if (uncond_allow) return Category::kTake;
  if (uncond_deny) return Category::kRefused;
  if (uncond.empty() && !AllowLike(base.dflt.action) && cond.size() == 1 &&
      AllowLike(*cond.begin())) {
    return Category::kConditional;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "config.json: cannot merge policy \"", name, "\" for syscall ", s,
      ": the base profile treats it with conditions or mixed actions (", absl::StrJoin(uncond, ","),
      cond.empty() ? "" : " conditional: ", absl::StrJoin(cond, ","), ") under defaultAction ",
      base.dflt.action,
      " that cannot be combined with SCMP_ACT_NOTIFY; remove it from the profile or the policy"));
}

absl::StatusOr<Merge> PlanMerge(const CompileResult& plan, const BaseProfile& base,
                                const std::string& name, PrecreateResult* res) {
  Merge m;
  for (const SyscallPlan& sp : plan.syscalls) {
    const std::string& s = sp.syscall;
    std::vector<const ojson*> named;
    for (const ojson& r : base.rules) {
      if (Names(r, s)) named.push_back(&r);
    }
    if (AlreadyMerged(sp, named)) {
      m.cat[s] = Category::kDone;
      if (sp.notify) m.notify.insert(s);
      continue;
    }
    const bool all_notify =
        !named.empty() && std::all_of(named.begin(), named.end(), [](const ojson* r) {
          return ActionOf(*r) == "SCMP_ACT_NOTIFY";
        });
    if (all_notify && base.listener) {
      m.cat[s] = Category::kDoneNotify;
      m.notify.insert(s);
      continue;
    }
    SA_ASSIGN_OR_RETURN(Category c, CategoryOf(sp, named, base, name));
    m.cat[s] = c;
    if ((c == Category::kTake && sp.notify) || c == Category::kConditional) m.notify.insert(s);
    if (c == Category::kRefused) {
      res->notes.push_back(absl::StrCat(
          s, ": the base profile refuses it outright; the policy's rules for it never run"));
    }
  }
  return m;
}

// Phase 4: syscalls the runtime needs while handing the listener over.
absl::Status CheckRuntimeNotify(const HookConfig& config, const std::set<std::string>& notify,
                                const std::string& name) {
  std::vector<std::string> bad;
  for (const std::string& f : ForbiddenNotifySyscalls(config.runtime)) {
    if (notify.count(f) > 0) bad.push_back(f);
  }
  if (bad.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "policy \"", name, "\" needs SCMP_ACT_NOTIFY on ", absl::StrJoin(bad, ", "),
      ", which the runtime (hook runtime: ", TargetRuntimeName(config.runtime),
      ") uses while handing the seccomp listener to the agent: runc refuses NOTIFY on write "
      "(\"SCMP_ACT_NOTIFY cannot be used for the write syscall\"). Make those rules "
      "kernel-decidable (no pointer/fd/container conditions; allow or deny) or, if this "
      "container runs under crun, set runtime: crun in the hook config"));
}

// Phase 5: the new rule list. S comes out of the base rules (kTake),
// conditional allows are split and converted (kConditional), then the
// compiled plans are appended.
ojson RewriteRules(const ojson& rules, const CompileResult& plan, const Merge& m) {
  ojson out = ojson::array();
  for (const ojson& r : rules) {
    ojson kept = r;
    std::vector<ojson> converted;
    for (const SyscallPlan& sp : plan.syscalls) {
      const std::string& s = sp.syscall;
      if (!Names(kept, s)) continue;
      if (m.cat.at(s) == Category::kTake) {
        RemoveName(&kept, s);
      } else if (m.cat.at(s) == Category::kConditional) {
        ojson c = kept;
        c["names"] = ojson::array({s});
        c["action"] = "SCMP_ACT_NOTIFY";
        c.erase("errnoRet");
        converted.push_back(std::move(c));
        RemoveName(&kept, s);
      }
    }
    auto kn = kept.find("names");
    auto rn = r.find("names");
    const bool dropped = kn != kept.end() && kn->empty() && rn != r.end() && !rn->empty();
    if (!dropped) out.push_back(std::move(kept));
    for (ojson& c : converted) out.push_back(std::move(c));
  }
  for (const SyscallPlan& sp : plan.syscalls) {
    if (m.cat.at(sp.syscall) != Category::kTake) continue;
    for (const KernelRule& k : sp.rules) out.push_back(k.ToJson());
  }
  return out;
}

// The syscalls whose rules the kernel now decides (sorted).
std::vector<std::string> KernelSyscalls(const CompileResult& plan, const Merge& m) {
  std::vector<std::string> out;
  for (const SyscallPlan& sp : plan.syscalls) {
    const Category c = m.cat.at(sp.syscall);
    if (c != Category::kTake && c != Category::kDone) continue;
    for (const RuleDisposition& d : plan.dispositions) {
      if (d.syscall == sp.syscall && d.kernel) {
        out.push_back(sp.syscall);
        break;
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The chosen policy, loaded, or an error naming it.
absl::StatusOr<std::shared_ptr<const CompiledPolicy>> LoadNamed(const PolicyLoader& loader,
                                                                const std::string& name) {
  SA_RETURN_IF_ERROR(CheckPolicyName(name));
  auto loaded = loader(name);
  if (!loaded.ok()) {
    return absl::Status(loaded.status().code(),
                        absl::StrCat("policy \"", name, "\": ", loaded.status().message()));
  }
  return loaded;
}

absl::Status CheckCrunReceiver(const std::map<std::string, std::string>& annotations,
                               const HookConfig& config) {
  auto r = annotations.find(kCrunReceiverAnnotation);
  if (r == annotations.end() || r->second == config.agent_socket) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "config.json: annotation ", kCrunReceiverAnnotation, " sends the seccomp listener to ",
      r->second, ", not to the agent at ", config.agent_socket, "; refusing to set up two agents"));
}

}  // namespace

PolicyLoader FilePolicyLoader(const std::string& policy_dir) {
  return [policy_dir](
             const std::string& name) -> absl::StatusOr<std::shared_ptr<const CompiledPolicy>> {
    SA_ASSIGN_OR_RETURN(std::string path, PolicyFileIn(policy_dir, name));
    if (path.empty()) {
      return absl::NotFoundError(
          absl::StrCat("no ", name, ".yaml or ", name, ".json in ", policy_dir));
    }
    return CompiledPolicy::LoadFile(path);
  };
}

bool SocketExists(const std::string& socket) {
  struct stat st;
  return stat(socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

namespace {

// The merged config.json, once every check passed.
void WriteOutput(ojson& cfg, BaseProfile& base, ojson out, const Merge& m, const HookConfig& config,
                 const std::string& name, PrecreateResult* res) {
  ojson& seccomp = base.seccomp;
  if (!out.empty() || seccomp.contains("syscalls")) seccomp["syscalls"] = std::move(out);
  if (!m.notify.empty()) {
    seccomp["listenerPath"] = config.agent_socket;
    seccomp["listenerMetadata"] = ListenerMetadataFor(name);
  }
  cfg["linux"]["seccomp"] = std::move(seccomp);
  res->output = cfg.dump() + "\n";
  res->notes.push_back(
      absl::StrCat("policy \"", name, "\": notify [", absl::StrJoin(res->notify_syscalls, ","),
                   "], kernel [", absl::StrJoin(res->kernel_syscalls, ","), "]",
                   base.had_seccomp ? "" : " (no seccomp profile: default SCMP_ACT_ALLOW)"));
}

// on_agent_down when the agent socket is not there: the config unchanged
// (pass) or an error (fail).
absl::StatusOr<PrecreateResult> AgentDown(const HookConfig& config, const std::string& name,
                                          const std::string& unchanged, PrecreateResult res) {
  if (config.on_agent_down != OnAgentDown::kPass) {
    return absl::UnavailableError(absl::StrCat("agent socket ", config.agent_socket,
                                               " is not there (is seccomp-agent running?); "
                                               "on_agent_down: fail"));
  }
  res.output = unchanged;
  res.notes.push_back(absl::StrCat("WARNING: agent socket ", config.agent_socket,
                                   " is not there; on_agent_down: pass, so the container runs "
                                   "WITHOUT policy \"",
                                   name, "\" (config unchanged)"));
  return res;
}

}  // namespace

absl::StatusOr<PrecreateResult> Precreate(absl::string_view config_json, const HookConfig& config,
                                          const PolicyLoader& loader, const AgentProbe& probe) {
  PrecreateResult res;
  ojson cfg;
  try {
    cfg = ojson::parse(config_json.begin(), config_json.end());
  } catch (const ojson::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: invalid JSON: ", e.what()));
  }
  if (!cfg.is_object()) return absl::InvalidArgumentError("config.json: expected a JSON object");
  const std::string unchanged = cfg.dump() + "\n";

  SA_ASSIGN_OR_RETURN(auto annotations, ReadAnnotations(cfg));
  std::optional<std::string> name = SelectPolicy(config, annotations);
  if (!name) {
    res.output = unchanged;
    res.notes.push_back("no seccomp-agent policy applies to this container; config unchanged");
    return res;
  }
  SA_ASSIGN_OR_RETURN(auto policy, LoadNamed(loader, *name));
  res.policy = *name;
  SA_RETURN_IF_ERROR(CheckCrunReceiver(annotations, config));
  SA_ASSIGN_OR_RETURN(BaseProfile base, ReadBaseProfile(cfg, config, *name));

  CompileOptions opts;
  opts.compile = config.compile;
  opts.profile_default = base.dflt;
  CompileResult plan = Compile(*policy, opts);
  SA_ASSIGN_OR_RETURN(Merge m, PlanMerge(plan, base, *name, &res));
  SA_RETURN_IF_ERROR(CheckRuntimeNotify(config, m.notify, *name));
  if (!m.notify.empty() && !probe(config.agent_socket)) {
    return AgentDown(config, *name, unchanged, std::move(res));
  }

  ojson out = RewriteRules(base.rules, plan, m);
  res.kernel_syscalls = KernelSyscalls(plan, m);
  res.notify_syscalls.assign(m.notify.begin(), m.notify.end());
  if (!base.had_seccomp && out.empty() && m.notify.empty()) {
    res.output = unchanged;
    res.notes.push_back(
        absl::StrCat("policy \"", *name, "\" needs no seccomp rules; config unchanged"));
    return res;
  }
  WriteOutput(cfg, base, std::move(out), m, config, *name, &res);
  return res;
}

}  // namespace seccomp_agent::hook
