#include "agent/policy/compiler.h"

#include <errno.h>
#include <seccomp.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/common/status.h"
#include "agent/policy/loader.h"

namespace seccomp_agent {
namespace {

using SC = v1::ScalarCondition;
constexpr uint64_t kMax = ~0ull;

struct Interval {
  uint64_t lo, hi;  // inclusive
};

// The values an eq/ne/lt/le/gt/ge condition accepts, as intervals.
std::vector<Interval> IntervalsOf(const SC& c) {
  const uint64_t v = c.value();
  switch (c.op()) {
    case SC::EQ:
      return {{v, v}};
    case SC::NE: {
      std::vector<Interval> out;
      if (v > 0) out.push_back({0, v - 1});
      if (v < kMax) out.push_back({v + 1, kMax});
      return out;
    }
    case SC::LT:
      if (v == 0) return {};
      return {{0, v - 1}};
    case SC::LE:
      return {{0, v}};
    case SC::GT:
      if (v == kMax) return {};
      return {{v + 1, kMax}};
    case SC::GE:
      return {{v, kMax}};
    default:
      return {{0, kMax}};  // not an interval op; callers check first
  }
}

bool IsIntervalOp(SC::Op op) { return op != SC::MASKED_EQ; }

// True when no value satisfies both conditions (same argument index).
bool CondsDisjoint(const SC& a, const SC& b) {
  if (IsIntervalOp(a.op()) && IsIntervalOp(b.op())) {
    for (const Interval& x : IntervalsOf(a)) {
      for (const Interval& y : IntervalsOf(b)) {
        if (std::max(x.lo, y.lo) <= std::min(x.hi, y.hi)) return false;
      }
    }
    return true;
  }
  if (a.op() == SC::MASKED_EQ && b.op() == SC::MASKED_EQ) {
    return ((a.value() ^ b.value()) & a.mask() & b.mask()) != 0;
  }
  const SC& m = a.op() == SC::MASKED_EQ ? a : b;
  const SC& o = a.op() == SC::MASKED_EQ ? b : a;
  if (o.op() == SC::EQ) return (o.value() & m.mask()) != m.value();
  return false;  // not proven: treat as overlapping
}

// True when the two rules' scalar conditions cannot both hold.
bool RulesDisjoint(const v1::Rule& a, const v1::Rule& b) {
  for (const SC& ca : a.match().args().scalars()) {
    for (const SC& cb : b.match().args().scalars()) {
      if (ca.index() == cb.index() && CondsDisjoint(ca, cb)) return true;
    }
  }
  return false;
}

// "" when the rule can live in the kernel filter, else why not.
std::string NotExpressibleReason(const v1::Rule& r) {
  const v1::Match& m = r.match();
  if (m.syscalls().empty()) return "applies to any syscall";
  const v1::ContainerMatch& cm = m.containers();
  if (!cm.annotations().empty() || !cm.id().empty() || !cm.metadata().empty()) {
    return "container match needs the container's identity";
  }
  const v1::ArgMatch& args = m.args();
  if (!args.path().empty()) return "path condition reads task memory";
  if (args.has_sockaddr()) return "sockaddr condition reads task memory";
  if (args.has_fd() && args.fd() >= 0) return "fd condition";
  if (r.action().kind_case() != v1::Action::kAllow && r.action().kind_case() != v1::Action::kDeny) {
    return absl::StrCat("action ", ActionKindName(r.action()), " needs the agent");
  }
  uint32_t seen = 0;
  for (const SC& c : args.scalars()) {
    const uint32_t bit = 1u << c.index();
    if (seen & bit) {
      return absl::StrCat("two conditions on argument ", c.index(),
                          " (runc would OR them into separate rules)");
    }
    seen |= bit;
  }
  return "";
}

SeccompAction KernelActionOf(const v1::Action& a) {
  if (a.kind_case() == v1::Action::kDeny) {
    return SeccompAction::Errno(static_cast<uint32_t>(a.deny().errno_code()));
  }
  return SeccompAction::Allow();
}

KernelArg ToKernelArg(const SC& c) {
  KernelArg k;
  k.index = c.index();
  k.op = KernelOpName(c.op());
  if (c.op() == SC::MASKED_EQ) {
    k.value = c.mask();
    k.value_two = c.value();
  } else {
    k.value = c.value();
  }
  return k;
}

// The negation of one condition as one condition; nullopt when it cannot
// be written. `*empty` is set when the negation holds for no value (the
// condition always holds), which needs no rule at all.
std::optional<SC> Negate(const SC& c, bool* empty) {
  *empty = false;
  SC n = c;
  switch (c.op()) {
    case SC::EQ:
      n.set_op(SC::NE);
      return n;
    case SC::NE:
      n.set_op(SC::EQ);
      return n;
    case SC::LT:
      n.set_op(SC::GE);
      return n;
    case SC::GE:
      if (c.value() == 0) *empty = true;
      n.set_op(SC::LT);
      return n;
    case SC::LE:
      if (c.value() == kMax) *empty = true;
      n.set_op(SC::GT);
      return n;
    case SC::GT:
      n.set_op(SC::LE);
      return n;
    case SC::MASKED_EQ:
      if ((c.mask() & (c.mask() - 1)) == 0) {  // one bit: the other value
        n.set_value(c.value() ^ c.mask());
        return n;
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

void AddKernelRule(SyscallPlan* plan, const std::string& s, const SeccompAction& act,
                   std::vector<KernelArg> args, const SeccompAction& profile_default) {
  if (act == profile_default) return;  // the default already does it
  plan->rules.push_back(KernelRule{s, act, std::move(args)});
  if (act == SeccompAction::Notify()) plan->notify = true;
}

}  // namespace

const char* KernelOpName(SC::Op op) {
  switch (op) {
    case SC::EQ:
      return "SCMP_CMP_EQ";
    case SC::NE:
      return "SCMP_CMP_NE";
    case SC::LT:
      return "SCMP_CMP_LT";
    case SC::LE:
      return "SCMP_CMP_LE";
    case SC::GT:
      return "SCMP_CMP_GT";
    case SC::GE:
      return "SCMP_CMP_GE";
    case SC::MASKED_EQ:
      return "SCMP_CMP_MASKED_EQ";
    default:
      return "SCMP_CMP_INVALID";
  }
}

nlohmann::ordered_json KernelRule::ToJson() const {
  nlohmann::ordered_json j;
  j["names"] = nlohmann::ordered_json::array({syscall});
  j["action"] = action.action;
  if (action.action == "SCMP_ACT_ERRNO") j["errnoRet"] = action.errno_ret;
  if (!args.empty()) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const KernelArg& k : args) {
      nlohmann::ordered_json e;
      e["index"] = k.index;
      e["value"] = k.value;
      e["valueTwo"] = k.value_two;
      e["op"] = k.op;
      a.push_back(std::move(e));
    }
    j["args"] = std::move(a);
  }
  return j;
}

std::vector<KernelRule> CompileResult::KernelRules() const {
  std::vector<KernelRule> out;
  for (const SyscallPlan& p : syscalls) out.insert(out.end(), p.rules.begin(), p.rules.end());
  return out;
}

bool CompileResult::CompiledInKernel(int rule_index, const std::string& syscall) const {
  for (const RuleDisposition& d : dispositions) {
    if (d.rule_index == rule_index && d.syscall == syscall) return d.kernel;
  }
  return false;
}

std::vector<std::string> DecidedSyscalls(const CompiledPolicy& policy) {
  std::set<std::string> s;
  for (const v1::Rule& r : policy.proto().rules()) {
    for (const std::string& name : r.match().syscalls()) s.insert(name);
  }
  return std::vector<std::string>(s.begin(), s.end());
}

CompileResult Compile(const CompiledPolicy& policy, const CompileOptions& options) {
  CompileResult result;
  result.options = options;
  const v1::Policy& p = policy.proto();
  const bool default_allows = p.default_action().kind_case() == v1::Action::kAllow;
  const SeccompAction& dflt = options.profile_default;

  for (const std::string& s : DecidedSyscalls(policy)) {
    // The rules that apply to s, in file order.
    std::vector<int> applies;
    for (int i = 0; i < p.rules_size(); ++i) {
      const auto& names = p.rules(i).match().syscalls();
      if (names.empty() || std::find(names.begin(), names.end(), s) != names.end()) {
        applies.push_back(i);
      }
    }
    std::vector<RuleDisposition> disp;
    for (int i : applies) disp.push_back(RuleDisposition{i, p.rules(i).name(), s, false, ""});
    SyscallPlan plan;
    plan.syscall = s;

    auto all_notify = [&](const std::string& reason) {
      for (RuleDisposition& d : disp) {
        d.kernel = false;
        if (d.reason.empty()) d.reason = reason;
      }
      plan.rules.clear();
      plan.notify = false;
      AddKernelRule(&plan, s, SeccompAction::Notify(), {}, dflt);
    };

    if (!options.compile) {
      all_notify("compilation off");
    } else if (options.notify_only.count(s) > 0) {
      all_notify("the base profile restricts this syscall with argument conditions");
    } else {
      // Which rules the kernel may decide (see compiler.h).
      std::vector<size_t> compiled;  // positions in `applies`
      for (size_t k = 0; k < applies.size(); ++k) {
        const v1::Rule& r = p.rules(applies[k]);
        std::string why = NotExpressibleReason(r);
        for (size_t j = 0; why.empty() && j < k; ++j) {
          const v1::Rule& earlier = p.rules(applies[j]);
          if (RulesDisjoint(earlier, r)) continue;
          if (disp[j].kernel && KernelActionOf(earlier.action()) == KernelActionOf(r.action())) {
            continue;
          }
          why = absl::StrCat("earlier rule ", RuleLabel(applies[j], earlier.name()),
                             " may match the same calls first");
        }
        disp[k].reason = why;
        disp[k].kernel = why.empty();
        if (disp[k].kernel) compiled.push_back(k);
      }
      const bool rest_notify = !default_allows || compiled.size() != applies.size();
      const SeccompAction rest = rest_notify ? SeccompAction::Notify() : SeccompAction::Allow();

      // The rest as one-condition rules, when it can be written.
      bool expressible = true;
      std::vector<std::vector<KernelArg>> rest_chains;
      if (rest == dflt) {
        // Nothing to write: uncaught calls get the default.
      } else if (compiled.empty()) {
        rest_chains.push_back({});
      } else if (compiled.size() == 1) {
        for (const SC& c : p.rules(applies[compiled[0]]).match().args().scalars()) {
          bool empty = false;
          std::optional<SC> n = Negate(c, &empty);
          if (!n) {
            expressible = false;
            break;
          }
          if (!empty) rest_chains.push_back({ToKernelArg(*n)});
        }
      } else {
        expressible = false;
      }

      if (!expressible) {
        for (size_t k : compiled) {
          disp[k].kernel = false;
          disp[k].reason =
              "rest not expressible: the calls left for the agent cannot be "
              "described to the kernel next to this rule";
        }
        all_notify("");
      } else {
        for (size_t k : compiled) {
          const v1::Rule& r = p.rules(applies[k]);
          std::vector<KernelArg> args;
          for (const SC& c : r.match().args().scalars()) args.push_back(ToKernelArg(c));
          AddKernelRule(&plan, s, KernelActionOf(r.action()), std::move(args), dflt);
        }
        for (auto& chain : rest_chains) AddKernelRule(&plan, s, rest, std::move(chain), dflt);
      }
    }
    if (plan.notify) result.notify_syscalls.push_back(s);
    for (RuleDisposition& d : disp) result.dispositions.push_back(std::move(d));
    result.syscalls.push_back(std::move(plan));
  }
  std::stable_sort(result.dispositions.begin(), result.dispositions.end(),
                   [](const RuleDisposition& a, const RuleDisposition& b) {
                     return a.rule_index < b.rule_index;
                   });
  return result;
}

void ScmpFilterDeleter::operator()(void* ctx) const { seccomp_release(ctx); }

namespace {

absl::StatusOr<uint32_t> LibseccompAction(const SeccompAction& a) {
  if (a.action == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
  if (a.action == "SCMP_ACT_ERRNO") return SCMP_ACT_ERRNO(a.errno_ret == 0 ? EPERM : a.errno_ret);
  if (a.action == "SCMP_ACT_NOTIFY") return SCMP_ACT_NOTIFY;
  if (a.action == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
  if (a.action == "SCMP_ACT_KILL" || a.action == "SCMP_ACT_KILL_THREAD") return SCMP_ACT_KILL;
  if (a.action == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
  return absl::InvalidArgumentError(absl::StrCat("unsupported action ", a.action));
}

absl::StatusOr<scmp_compare> LibseccompOp(const std::string& op) {
  if (op == "SCMP_CMP_EQ") return SCMP_CMP_EQ;
  if (op == "SCMP_CMP_NE") return SCMP_CMP_NE;
  if (op == "SCMP_CMP_LT") return SCMP_CMP_LT;
  if (op == "SCMP_CMP_LE") return SCMP_CMP_LE;
  if (op == "SCMP_CMP_GT") return SCMP_CMP_GT;
  if (op == "SCMP_CMP_GE") return SCMP_CMP_GE;
  if (op == "SCMP_CMP_MASKED_EQ") return SCMP_CMP_MASKED_EQ;
  return absl::InvalidArgumentError(absl::StrCat("unknown op ", op));
}

}  // namespace

absl::StatusOr<ScmpFilter> BuildSeccompFilter(const CompileResult& result) {
  SA_ASSIGN_OR_RETURN(uint32_t dflt, LibseccompAction(result.options.profile_default));
  ScmpFilter ctx(seccomp_init(dflt));
  if (!ctx) return absl::InternalError("seccomp_init failed");
  for (const KernelRule& r : result.KernelRules()) {
    const std::string what = r.ToJson().dump();
    SA_ASSIGN_OR_RETURN(uint32_t act, LibseccompAction(r.action));
    const int nr = seccomp_syscall_resolve_name(r.syscall.c_str());
    if (nr == __NR_SCMP_ERROR) {
      return absl::InvalidArgumentError(absl::StrCat("unknown syscall in ", what));
    }
    std::vector<scmp_arg_cmp> cmps;
    for (const KernelArg& a : r.args) {
      SA_ASSIGN_OR_RETURN(scmp_compare op, LibseccompOp(a.op));
      cmps.push_back(scmp_arg_cmp{a.index, op, a.value, a.value_two});
    }
    const int rc = seccomp_rule_add_array(ctx.get(), act, nr, static_cast<unsigned>(cmps.size()),
                                          cmps.empty() ? nullptr : cmps.data());
    if (rc != 0) return ErrnoStatus(-rc, absl::StrCat("seccomp_rule_add ", what));
  }
  return ctx;
}

}  // namespace seccomp_agent
