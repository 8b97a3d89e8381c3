// The policy compiler: splits a CompiledPolicy into what the kernel's
// seccomp filter can decide by itself (OCI runtime-spec syscall rules with
// SCMP_ACT_ERRNO / SCMP_ACT_ALLOW and `args` conditions) and what must reach
// the agent as SCMP_ACT_NOTIFY. The OCI hook (oci-hook/) writes the result
// into config.json; the agent uses the same function to know which of its
// rules the kernel already applies, so both sides agree on the split.
//
// Which syscalls: the union of every rule's `match.syscalls` (the
// "decided" set D). Rules without a syscall list apply to the syscalls in D
// (as in the agent, which only ever sees trapped syscalls) and add none.
//
// A rule r is KERNEL-EXPRESSIBLE when all of these hold:
//   * it names syscalls (a list; any-syscall rules stay with the agent),
//   * it has no container match (annotations / id / metadata need the
//     container's identity), no path / sockaddr condition (pointers into
//     task memory), no fd condition (a 32-bit compare, kept with the agent),
//   * its action is allow (SCMP_ACT_ALLOW) or deny (SCMP_ACT_ERRNO with
//     errnoRet) -- log, return, plugin and substitutions need the agent,
//   * its scalar conditions name distinct argument indexes (runc turns two
//     conditions on one index into two rules, i.e. an OR, not an AND).
//
// For one syscall S, let R = [r1..rn] be the rules that apply to S in file
// order (first match wins in the agent). Rule ri is COMPILED for S exactly
// when it is kernel-expressible and, for every earlier rj (j < i):
//   (a) rj and ri are provably disjoint: on some argument index they carry
//       conditions no value satisfies both (interval arithmetic for
//       eq/ne/lt/le/gt/ge; masked_eq against eq or masked_eq by bits), or
//   (b) rj is itself compiled for S with the identical kernel action
//       (same action, same errno), so whichever the kernel picks, the
//       outcome is the one the agent would give.
// Otherwise ri is kept (NOTIFY) for S. Because compiled rules with different
// actions are then pairwise disjoint, the order-free kernel filter gives
// every call the decision of its first matching rule.
//
// The calls of S that no compiled rule catches (the "rest") get:
//   * SCMP_ACT_ALLOW when every rule of S is compiled and the policy's
//     default action is allow (allow in the runtime phase and after),
//   * SCMP_ACT_NOTIFY otherwise (the agent decides them with the whole
//     policy; none of them can match a compiled rule, so the agent's
//     first-match result is unchanged).
// libseccomp has no "else": for one syscall an unconditional rule silently
// overrides conditional ones. So the rest is written as:
//   * nothing, when its action equals the profile's default action;
//   * one unconditional rule, when no rule of S is compiled;
//   * the complement of the single compiled rule as one-condition rules
//     (eq<->ne, lt<->ge, le<->gt, masked_eq with a one-bit mask <-> the
//     other bit value), when exactly one rule is compiled;
// and when none of these applies (several compiled rules, or a complement
// that cannot be written), every rule of S falls back to NOTIFY (reason
// "rest not expressible"). Rules whose action equals the profile's default
// action are left out (libseccomp refuses them; the default does the same).
//
// With CompileOptions::compile false, or for a syscall listed in
// notify_only, every rule of S is kept and S gets one unconditional NOTIFY.
#ifndef SECCOMP_AGENT_POLICY_COMPILER_H_
#define SECCOMP_AGENT_POLICY_COMPILER_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/policy/policy.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent {

// An action in runtime-spec terms ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO" with
// errno_ret, "SCMP_ACT_NOTIFY", or any other SCMP_ACT_* a base profile uses).
struct SeccompAction {
  std::string action;
  uint32_t errno_ret = 0;  // SCMP_ACT_ERRNO only (EPERM when the spec omits it)

  static SeccompAction Allow() { return {"SCMP_ACT_ALLOW", 0}; }
  static SeccompAction Errno(uint32_t e) { return {"SCMP_ACT_ERRNO", e}; }
  static SeccompAction Notify() { return {"SCMP_ACT_NOTIFY", 0}; }
  bool operator==(const SeccompAction& o) const {
    return action == o.action && errno_ret == o.errno_ret;
  }
  bool operator!=(const SeccompAction& o) const { return !(*this == o); }
};

// One runtime-spec `args` entry. For SCMP_CMP_MASKED_EQ `value` is the mask
// and `value_two` the expected value, as in the runtime spec and libseccomp.
struct KernelArg {
  uint32_t index = 0;
  uint64_t value = 0;
  uint64_t value_two = 0;
  std::string op;  // "SCMP_CMP_EQ", ... "SCMP_CMP_MASKED_EQ"
  bool operator==(const KernelArg& o) const {
    return index == o.index && value == o.value && value_two == o.value_two && op == o.op;
  }
};

// One runtime-spec LinuxSyscall entry for one syscall.
struct KernelRule {
  std::string syscall;
  SeccompAction action;
  std::vector<KernelArg> args;

  // {"names":[syscall],"action":..,"errnoRet":.. (ERRNO only),"args":[..]
  // (when non-empty)}; 64-bit values stay exact (unsigned JSON numbers).
  nlohmann::ordered_json ToJson() const;
  bool operator==(const KernelRule& o) const {
    return syscall == o.syscall && action == o.action && args == o.args;
  }
};

// What happened to one rule for one syscall it applies to.
struct RuleDisposition {
  int rule_index = 0;  // index in policy.proto().rules()
  std::string rule;    // its name
  std::string syscall;
  bool kernel = false;  // decided by the kernel filter, never notified
  std::string reason;   // why it was kept for the agent ("" when kernel)
};

// Everything the filter needs for one syscall of the decided set.
struct SyscallPlan {
  std::string syscall;
  std::vector<KernelRule> rules;  // compiled rules plus the rest's rules
  bool notify = false;            // some calls of it reach the agent
};

struct CompileOptions {
  // false: no rule is compiled, every decided syscall is NOTIFY.
  bool compile = true;
  // The action the profile gives a syscall no rule catches.
  SeccompAction profile_default = SeccompAction::Allow();
  // Syscalls that must stay entirely with the agent (e.g. the base profile
  // already restricts them with argument conditions).
  std::set<std::string> notify_only;
};

struct CompileResult {
  CompileOptions options;
  std::vector<SyscallPlan> syscalls;          // sorted by name
  std::vector<std::string> notify_syscalls;   // sorted; plan.notify true
  std::vector<RuleDisposition> dispositions;  // by rule, then syscall

  // All rules of all plans, in plan order.
  std::vector<KernelRule> KernelRules() const;
  // Whether rule `rule_index` is decided by the kernel for `syscall`.
  bool CompiledInKernel(int rule_index, const std::string& syscall) const;
};

// The decided set D of the policy (sorted, unique).
std::vector<std::string> DecidedSyscalls(const CompiledPolicy& policy);

// Splits the policy (see the top of this file for the exact rules).
CompileResult Compile(const CompiledPolicy& policy, const CompileOptions& options = {});

// "SCMP_CMP_EQ" etc. for a policy op.
const char* KernelOpName(v1::ScalarCondition::Op op);

// libseccomp filter context owner.
struct ScmpFilterDeleter {
  void operator()(void* ctx) const;
};
using ScmpFilter = std::unique_ptr<void, ScmpFilterDeleter>;

// Builds a libseccomp filter (native arch) holding `result`'s kernel rules
// over `result.options.profile_default`, for the benchmark and tests: load
// it with seccomp_load() in the task to filter; when it has NOTIFY rules
// the listener is seccomp_notify_fd() afterwards. Errors name the rule.
absl::StatusOr<ScmpFilter> BuildSeccompFilter(const CompileResult& result);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_POLICY_COMPILER_H_
