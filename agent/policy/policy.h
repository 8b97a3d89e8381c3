// The compiled local policy: rules from a YAML/JSON file (or the built-in
// default), validated at load and indexed by syscall name for the hot path.
//
// Semantics (see also loader.h for the file format):
//  * Rules are tried in file order; the first rule that matches decides.
//    `log` is a decision too (record, then CONTINUE): later rules are not
//    consulted.
//  * A rule matches when all of these hold: its container match
//    (annotations: every listed key present with a value matching the glob;
//    id glob; metadata glob), its syscall list (empty = any syscall), and
//    every argument condition.
//  * A path condition matches the decoded path (PathGlob semantics, see
//    glob.h); for syscalls with two paths (rename, link, symlink families)
//    it matches when either path does. An event whose path was not decoded,
//    or whose decode failed, never matches a path condition. Same for
//    sockaddr conditions. A scalar condition compares the raw 64-bit
//    argument register ev.args[index], unsigned, as the kernel's seccomp
//    filter does (see ScalarCondition in policy.proto), so a rule that
//    agent/policy/compiler moves into the kernel decides the same way there.
//    The fd condition compares with ev.fd, or with the
//    fd argument from the layout table when the engine left ev.fd empty.
//  * No rule matched and ev.runtime_phase: allow, rule "runtime-init",
//    rule_index -2 (the runtime's own pre-exec calls pass under any policy
//    that does not name them; a matching rule still applies).
//  * No rule matched otherwise: default_action, rule "default", index -1.
//
// A CompiledPolicy is immutable and shared by all engine threads.
#ifndef SECCOMP_AGENT_POLICY_POLICY_H_
#define SECCOMP_AGENT_POLICY_POLICY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/model/event.h"
#include "agent/policy/glob.h"
#include "proto/seccompagent/v1/policy.pb.h"

namespace seccomp_agent {

// The schema's C++ namespace (package seccompagent.v1).
namespace v1 = ::seccompagent::v1;

// DecodeNeeds bits that carrying out `action` needs of a call (the path a
// redirect maps, the sockaddr a rewrite reads, ...).
uint32_t ActionNeeds(const v1::Action& action);

class CompiledPolicy {
 public:
  // Reads, decodes and validates a policy file. Errors name the file, the
  // rule (index and name) and the field, e.g.
  //   policy.yaml: rules[2] "no-mkdir": match.syscalls[1]: unknown syscall "mkdri"
  static absl::StatusOr<std::shared_ptr<const CompiledPolicy>> LoadFile(const std::string& path);
  // As LoadFile, for text in memory; `source_name` is used in errors.
  static absl::StatusOr<std::shared_ptr<const CompiledPolicy>> LoadString(
      absl::string_view text, absl::string_view source_name);
  // Validates and compiles a policy built in code (same checks as files).
  static absl::StatusOr<std::shared_ptr<const CompiledPolicy>> FromProto(
      v1::Policy p, absl::string_view source_name);
  // The compiled-in policy (kBuiltinPolicyYaml), loaded through the same
  // loader. Never fails (a broken built-in is caught by policy_test).
  static std::shared_ptr<const CompiledPolicy> BuiltinDefault();

  // DecodeNeeds bits that some rule may need to decide `syscall`, limited to
  // what ArgLayoutFor(syscall) can supply. No allocation.
  uint32_t Needs(absl::string_view syscall) const;

  struct Verdict {
    const v1::Action* action;  // never null; owned by this policy
    absl::string_view rule;    // rule name, "default" or "runtime-init"
    int rule_index;            // index in proto().rules(), -1 default, -2 runtime
  };
  // Decides one event. Thread-safe, no allocation. The returned pointers
  // live as long as this CompiledPolicy.
  Verdict Evaluate(const SyscallEvent& ev) const { return Evaluate(ev, 0); }
  // As Evaluate, considering only rules with index >= first_rule (a plugin
  // that defers or fails with on_error: local continues after its rule).
  Verdict Evaluate(const SyscallEvent& ev, int first_rule) const;

  const v1::Policy& proto() const { return proto_; }
  std::string source() const { return source_; }

  ~CompiledPolicy();

 private:
  struct SockaddrCond {
    int family = 0;  // 0: any
    std::optional<FlatGlob> address;
    std::optional<uint16_t> port;
  };
  struct Rule {
    std::vector<std::pair<std::string, FlatGlob>> annotations;
    std::optional<FlatGlob> id;
    std::optional<FlatGlob> metadata;
    std::optional<PathGlob> path;
    std::optional<SockaddrCond> sockaddr;
    std::optional<int64_t> fd;
    struct Scalar {
      int index;
      v1::ScalarCondition::Op op;
      uint64_t value;
      uint64_t mask;
    };
    std::vector<Scalar> scalars;    // raw argument conditions, all must hold
    uint32_t needs = kNeedNothing;  // decoded values its conditions/action use
  };
  struct SyscallEntry {
    std::vector<int> rules;  // rule indexes in file order (named + any-syscall)
    uint32_t needs = kNeedNothing;
  };

  CompiledPolicy() = default;
  // The rules as matchers: globs compiled, each syscall's rule list (not the
  // kernel filter, which is compiler.h's Compile).
  absl::Status BuildMatchers();
  bool Matches(const Rule& r, const SyscallEvent& ev) const;
  const SyscallEntry& EntryFor(absl::string_view syscall) const;

  v1::Policy proto_;
  std::string source_;
  std::vector<Rule> rules_;
  absl::flat_hash_map<std::string, SyscallEntry> by_syscall_;
  SyscallEntry any_syscall_;  // for syscalls no rule names
  v1::Action runtime_allow_;
};

// "allow", "deny", "return", "log", "redirect_open", "rewrite_bind",
// "replace_write", "plugin"; "none" for an empty Action.
std::string ActionKindName(const v1::Action& action);

// Whether a ScalarCondition with `op` holds for the raw register `arg`
// (unsigned 64-bit, libseccomp SCMP_CMP_* semantics). Shared by Evaluate
// and agent/policy/compiler's tests.
bool ScalarHolds(v1::ScalarCondition::Op op, uint64_t arg, uint64_t value, uint64_t mask);

// The text BuiltinDefault() loads (YAML), for `--check_policy` and docs.
extern const char kBuiltinPolicyYaml[];

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_POLICY_POLICY_H_
