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
#include "oci-hook/admin_protocol.h"

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

}  // namespace

PolicyLoader FilePolicyLoader(const std::string& policy_dir) {
  return [policy_dir](const std::string& name) {
    return CompiledPolicy::LoadFile(absl::StrCat(policy_dir, "/", name, ".yaml"));
  };
}

bool SocketExists(const std::string& socket) {
  struct stat st;
  return stat(socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

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

  // Which policy.
  std::map<std::string, std::string> annotations;
  if (auto a = cfg.find("annotations"); a != cfg.end() && !a->is_null()) {
    if (!a->is_object()) return absl::InvalidArgumentError("config.json: annotations: expected an object");
    for (auto it = a->begin(); it != a->end(); ++it) {
      if (!it.value().is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("config.json: annotations[\"", it.key(), "\"]: expected a string"));
      }
      annotations[it.key()] = it.value().get<std::string>();
    }
  }
  std::optional<std::string> name = SelectPolicy(config, annotations);
  if (!name) {
    res.output = unchanged;
    res.notes.push_back("no seccomp-agent policy applies to this container; config unchanged");
    return res;
  }
  SA_RETURN_IF_ERROR(CheckPolicyName(*name));
  res.policy = *name;
  auto loaded = loader(*name);
  if (!loaded.ok()) {
    return absl::Status(loaded.status().code(),
                        absl::StrCat("policy \"", *name, "\": ", loaded.status().message()));
  }
  const CompiledPolicy& policy = **loaded;
  if (auto r = annotations.find(kCrunReceiverAnnotation);
      r != annotations.end() && r->second != config.agent_socket) {
    return absl::FailedPreconditionError(absl::StrCat(
        "config.json: annotation ", kCrunReceiverAnnotation, " sends the seccomp listener to ",
        r->second, ", not to the agent at ", config.agent_socket, "; refusing to set up two agents"));
  }

  // The base profile.
  if (cfg.contains("linux") && !cfg["linux"].is_object()) {
    return absl::InvalidArgumentError("config.json: linux: expected an object");
  }
  const bool had_seccomp = cfg.contains("linux") && cfg["linux"].contains("seccomp");
  ojson seccomp = had_seccomp ? cfg["linux"]["seccomp"] : ojson{{"defaultAction", "SCMP_ACT_ALLOW"}};
  if (!seccomp.is_object()) return absl::InvalidArgumentError("config.json: linux.seccomp: expected an object");
  auto da = seccomp.find("defaultAction");
  if (da == seccomp.end() || !da->is_string()) {
    return absl::InvalidArgumentError("config.json: linux.seccomp.defaultAction: required string");
  }
  SeccompAction dflt{da->get<std::string>(), 0};
  if (dflt.action == "SCMP_ACT_ERRNO") {
    auto e = seccomp.find("defaultErrnoRet");
    dflt.errno_ret = e != seccomp.end() && e->is_number_unsigned() ? e->get<uint32_t>() : EPERM;
  }
  if (dflt.action == "SCMP_ACT_NOTIFY") {
    return absl::InvalidArgumentError("config.json: linux.seccomp.defaultAction SCMP_ACT_NOTIFY is not supported");
  }
  std::optional<std::string> listener;
  if (auto lp = seccomp.find("listenerPath"); lp != seccomp.end()) {
    if (!lp->is_string()) return absl::InvalidArgumentError("config.json: linux.seccomp.listenerPath: expected a string");
    listener = lp->get<std::string>();
    if (*listener != config.agent_socket) {
      return absl::FailedPreconditionError(absl::StrCat(
          "config.json: linux.seccomp.listenerPath is already ", *listener,
          " (another seccomp agent?), not the agent socket ", config.agent_socket,
          "; refusing to take its listener over"));
    }
  }
  if (auto md = seccomp.find("listenerMetadata"); md != seccomp.end()) {
    const std::string want = ListenerMetadataFor(*name);
    if (!md->is_string() || md->get<std::string>() != want) {
      return absl::FailedPreconditionError(absl::StrCat(
          "config.json: linux.seccomp.listenerMetadata is ", md->dump(), ", expected \"", want,
          "\" (set up for another policy or by another tool)"));
    }
  }
  ojson rules = seccomp.contains("syscalls") ? seccomp["syscalls"] : ojson::array();
  if (!rules.is_array()) return absl::InvalidArgumentError("config.json: linux.seccomp.syscalls: expected an array");
  for (const ojson& r : rules) {
    if (!r.is_object()) {
      return absl::InvalidArgumentError("config.json: linux.seccomp.syscalls: every entry must be an object");
    }
    if (ActionOf(r) == "SCMP_ACT_NOTIFY" && !listener) {
      return absl::FailedPreconditionError(
          absl::StrCat("config.json: linux.seccomp has SCMP_ACT_NOTIFY rules (", r.dump(),
                       ") but no listenerPath; another seccomp agent owns this container"));
    }
  }

  // Compile, then decide per syscall.
  CompileOptions opts;
  opts.compile = config.compile;
  opts.profile_default = dflt;
  CompileResult plan = Compile(policy, opts);
  std::map<std::string, Category> cat;
  std::set<std::string> notify;
  for (const SyscallPlan& sp : plan.syscalls) {
    const std::string& s = sp.syscall;
    std::vector<const ojson*> named;
    for (const ojson& r : rules) {
      if (Names(r, s)) named.push_back(&r);
    }
    // Already exactly what the hook writes?
    if (!named.empty() && named.size() == sp.rules.size()) {
      bool same = true;
      for (size_t i = 0; same && i < named.size(); ++i) {
        same = Canon(*named[i]) == Canon(sp.rules[i].ToJson());
      }
      if (same) {
        cat[s] = Category::kDone;
        if (sp.notify) notify.insert(s);
        continue;
      }
    }
    const bool all_notify = !named.empty() && std::all_of(named.begin(), named.end(), [](const ojson* r) {
      return ActionOf(*r) == "SCMP_ACT_NOTIFY";
    });
    if (all_notify && listener) {
      cat[s] = Category::kDoneNotify;
      notify.insert(s);
      continue;
    }
    std::set<std::string> uncond, cond;
    for (const ojson* r : named) {
      if (ActionOf(*r) == "SCMP_ACT_NOTIFY") {
        return absl::FailedPreconditionError(absl::StrCat(
            "config.json: linux.seccomp already sends ", s,
            " to the agent in a way this hook configuration would not write (", r->dump(),
            "); was it set up with other settings?"));
      }
      (Conditional(*r) ? cond : uncond).insert(ActionOf(*r));
    }
    const bool uncond_allow = !uncond.empty() && std::all_of(uncond.begin(), uncond.end(), AllowLike);
    const bool uncond_deny = !uncond.empty() && std::none_of(uncond.begin(), uncond.end(), AllowLike);
    if (named.empty()) {
      cat[s] = AllowLike(dflt.action) ? Category::kTake : Category::kRefused;
    } else if (uncond_allow) {
      cat[s] = Category::kTake;
    } else if (uncond_deny) {
      cat[s] = Category::kRefused;
    } else if (uncond.empty() && !AllowLike(dflt.action) && cond.size() == 1 &&
               AllowLike(*cond.begin())) {
      cat[s] = Category::kConditional;
    } else {
      return absl::FailedPreconditionError(absl::StrCat(
          "config.json: cannot merge policy \"", *name, "\" for syscall ", s,
          ": the base profile treats it with conditions or mixed actions (",
          absl::StrJoin(uncond, ","), cond.empty() ? "" : " conditional: ", absl::StrJoin(cond, ","),
          ") under defaultAction ", dflt.action,
          " that cannot be combined with SCMP_ACT_NOTIFY; remove it from the profile or the policy"));
    }
    if (cat[s] == Category::kTake && sp.notify) notify.insert(s);
    if (cat[s] == Category::kConditional) notify.insert(s);
    if (cat[s] == Category::kRefused) {
      res.notes.push_back(absl::StrCat(s, ": the base profile refuses it outright; the policy's rules for it never run"));
    }
  }

  // Syscalls the runtime needs while handing the listener over.
  std::vector<std::string> bad;
  for (const std::string& f : ForbiddenNotifySyscalls(config.runtime)) {
    if (notify.count(f) > 0) bad.push_back(f);
  }
  if (!bad.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "policy \"", *name, "\" needs SCMP_ACT_NOTIFY on ", absl::StrJoin(bad, ", "),
        ", which the runtime (hook runtime: ", TargetRuntimeName(config.runtime),
        ") uses while handing the seccomp listener to the agent: runc refuses NOTIFY on write "
        "(\"SCMP_ACT_NOTIFY cannot be used for the write syscall\"). Make those rules "
        "kernel-decidable (no pointer/fd/container conditions; allow or deny) or, if this "
        "container runs under crun, set runtime: crun in the hook config"));
  }
  if (!notify.empty() && !probe(config.agent_socket)) {
    if (config.on_agent_down == OnAgentDown::kPass) {
      res.output = unchanged;
      res.notes.push_back(absl::StrCat("WARNING: agent socket ", config.agent_socket,
                                       " is not there; on_agent_down: pass, so the container runs "
                                       "WITHOUT policy \"", *name, "\" (config unchanged)"));
      return res;
    }
    return absl::UnavailableError(absl::StrCat("agent socket ", config.agent_socket,
                                               " is not there (is seccomp-agent running?); "
                                               "on_agent_down: fail"));
  }

  // Rewrite the rule list: take S out of the base rules (kTake), split and
  // convert conditional allows (kConditional), then append compiled plans.
  ojson out = ojson::array();
  for (const ojson& r : rules) {
    ojson kept = r;
    std::vector<ojson> converted;
    for (const SyscallPlan& sp : plan.syscalls) {
      const std::string& s = sp.syscall;
      if (!Names(kept, s)) continue;
      if (cat[s] == Category::kTake) {
        RemoveName(&kept, s);
      } else if (cat[s] == Category::kConditional) {
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
    if (cat[sp.syscall] != Category::kTake) continue;
    for (const KernelRule& k : sp.rules) out.push_back(k.ToJson());
  }
  for (const SyscallPlan& sp : plan.syscalls) {
    const Category c = cat[sp.syscall];
    if (c != Category::kTake && c != Category::kDone) continue;
    for (const RuleDisposition& d : plan.dispositions) {
      if (d.syscall == sp.syscall && d.kernel) {
        res.kernel_syscalls.push_back(sp.syscall);
        break;
      }
    }
  }
  std::sort(res.kernel_syscalls.begin(), res.kernel_syscalls.end());
  res.notify_syscalls.assign(notify.begin(), notify.end());

  if (!had_seccomp && out.empty() && notify.empty()) {
    res.output = unchanged;
    res.notes.push_back(absl::StrCat("policy \"", *name, "\" needs no seccomp rules; config unchanged"));
    return res;
  }
  if (!out.empty() || seccomp.contains("syscalls")) seccomp["syscalls"] = std::move(out);
  if (!notify.empty()) {
    seccomp["listenerPath"] = config.agent_socket;
    seccomp["listenerMetadata"] = ListenerMetadataFor(*name);
  }
  cfg["linux"]["seccomp"] = std::move(seccomp);
  res.output = cfg.dump() + "\n";
  res.notes.push_back(absl::StrCat("policy \"", *name, "\": notify [",
                                   absl::StrJoin(res.notify_syscalls, ","), "], kernel [",
                                   absl::StrJoin(res.kernel_syscalls, ","), "]",
                                   had_seccomp ? "" : " (no seccomp profile: default SCMP_ACT_ALLOW)"));
  return res;
}

}  // namespace seccomp_agent::hook
