#include "agent/policy/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "agent/common/fd.h"
#include "agent/common/status.h"
#include "agent/policy/loader.h"
#include "agent/model/syscall_args.h"

namespace seccomp_agent {

// The built-in policy. Default allow: the agent only sees the syscalls the
// container's seccomp profile sends to it, and an agent that breaks
// workloads by default is an agent nobody runs. Each rule is a narrow,
// defensible restriction.
const char kBuiltinPolicyYaml[] = R"yaml(# seccomp-agent built-in policy
version: 1
default_action: {allow: {}}
rules:
  # procfs and sysfs are the kernel's interface, not the workload's storage:
  # creating directories there is how cgroup-v1 hierarchies and some
  # escape-adjacent tricks start. Refuse with EPERM. (The runtime's own
  # setup calls pass through the runtime phase.)
  - name: deny-mkdir-procfs
    match: {syscalls: [mkdir, mkdirat], args: {path: "/proc/**"}}
    action: {deny: {errno: EPERM}}
  - name: deny-mkdir-sysfs
    match: {syscalls: [mkdir, mkdirat], args: {path: "/sys/**"}}
    action: {deny: {errno: EPERM}}
  # Device nodes are created by the runtime, never by a workload.
  - name: deny-mknod
    match: {syscalls: [mknod, mknodat]}
    action: {deny: {errno: EPERM}}
  # Audit trail of configuration reads: record, then let the call run.
  - name: audit-etc-opens
    match: {syscalls: [open, openat], args: {path: "/etc/**"}}
    action: {log: {}}
)yaml";

namespace {

constexpr size_t kMaxPolicyBytes = 4 << 20;

}  // namespace

uint32_t ActionNeeds(const v1::Action& a) {
  switch (a.kind_case()) {
    case v1::Action::kRedirectOpen:
      return kNeedPath;  // the injector maps the path it was given
    case v1::Action::kRewriteBind:
      return kNeedSockaddr;
    case v1::Action::kMknod:
      return kNeedPath;  // the agent creates the node at the path it was given
    case v1::Action::kMount:
      return kNeedPath;  // the target
    case v1::Action::kSetxattr:
      return kNeedPath;  // the file (setxattr, lsetxattr; fsetxattr names an fd)
    case v1::Action::kReplaceWrite:
      return a.replace_write().has_redact_regex() ? kNeedWriteBytes : kNeedNothing;
    case v1::Action::kLog:
    case v1::Action::kPlugin:
      // A log record or a plugin request without the arguments is useless.
      return kNeedPath | kNeedSockaddr;
    default:
      return kNeedNothing;
  }
}

CompiledPolicy::~CompiledPolicy() = default;

std::string ActionKindName(const v1::Action& action) {
  switch (action.kind_case()) {
    case v1::Action::kAllow:
      return "allow";
    case v1::Action::kDeny:
      return "deny";
    case v1::Action::kReturn:
      return "return";
    case v1::Action::kLog:
      return "log";
    case v1::Action::kRedirectOpen:
      return "redirect_open";
    case v1::Action::kRewriteBind:
      return "rewrite_bind";
    case v1::Action::kReplaceWrite:
      return "replace_write";
    case v1::Action::kPlugin:
      return "plugin";
    case v1::Action::kSysinfo:
      return "sysinfo";
    case v1::Action::kMknod:
      return "mknod";
    case v1::Action::kMount:
      return "mount";
    case v1::Action::kSetxattr:
      return "setxattr";
    case v1::Action::KIND_NOT_SET:
      break;
  }
  return "none";
}

absl::StatusOr<std::shared_ptr<const CompiledPolicy>> CompiledPolicy::LoadFile(
    const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open policy ", path));
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read policy ", path));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxPolicyBytes) {
      return PolicyError(path, "", "", absl::StrCat("larger than ", kMaxPolicyBytes, " bytes"));
    }
  }
  return LoadString(text, path);
}

absl::StatusOr<std::shared_ptr<const CompiledPolicy>> CompiledPolicy::LoadString(
    absl::string_view text, absl::string_view source_name) {
  SA_ASSIGN_OR_RETURN(v1::Policy p, ParsePolicyText(text, source_name));
  return FromProto(std::move(p), source_name);
}

absl::StatusOr<std::shared_ptr<const CompiledPolicy>> CompiledPolicy::FromProto(
    v1::Policy p, absl::string_view source_name) {
  SA_RETURN_IF_ERROR(ValidatePolicy(p, source_name));
  std::shared_ptr<CompiledPolicy> c(new CompiledPolicy());
  c->proto_ = std::move(p);
  c->source_ = std::string(source_name);
  SA_RETURN_IF_ERROR(c->BuildMatchers());
  return std::shared_ptr<const CompiledPolicy>(std::move(c));
}

std::shared_ptr<const CompiledPolicy> CompiledPolicy::BuiltinDefault() {
  // Loaded once (thread-safe static init), shared by every caller.
  static const auto* const kBuiltin = [] {
    auto p = LoadString(kBuiltinPolicyYaml, "<builtin>");
    if (!p.ok()) {
      // Unreachable unless kBuiltinPolicyYaml is edited badly (policy_test
      // loads it); fail closed rather than run without a policy.
      fprintf(stderr, "seccomp-agent: built-in policy is invalid: %s\n",
              std::string(p.status().message()).c_str());
      abort();
    }
    return new std::shared_ptr<const CompiledPolicy>(*std::move(p));
  }();
  return *kBuiltin;
}

// Runs after ValidatePolicy, so glob errors here are not expected; they are
// still reported rather than assumed away.
absl::Status CompiledPolicy::BuildMatchers() {
  runtime_allow_.mutable_allow();
  rules_.resize(proto_.rules_size());
  std::vector<int> any_rules;
  for (int i = 0; i < proto_.rules_size(); ++i) {
    const v1::Rule& pr = proto_.rules(i);
    const std::string label = RuleLabel(i, pr.name());
    Rule& r = rules_[i];
    const v1::ContainerMatch& cm = pr.match().containers();
    for (const auto& kv : cm.annotations()) {
      auto g = FlatGlob::Compile(kv.second);
      if (!g.ok())
        return PolicyError(source_, label, "match.containers.annotations", g.status().message());
      r.annotations.emplace_back(kv.first, *std::move(g));
    }
    std::sort(r.annotations.begin(), r.annotations.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    if (!cm.id().empty()) {
      auto g = FlatGlob::Compile(cm.id());
      if (!g.ok()) return PolicyError(source_, label, "match.containers.id", g.status().message());
      r.id = *std::move(g);
    }
    if (!cm.metadata().empty()) {
      auto g = FlatGlob::Compile(cm.metadata());
      if (!g.ok())
        return PolicyError(source_, label, "match.containers.metadata", g.status().message());
      r.metadata = *std::move(g);
    }
    const v1::ArgMatch& args = pr.match().args();
    if (!args.path().empty()) {
      auto g = PathGlob::Compile(args.path());
      if (!g.ok()) return PolicyError(source_, label, "match.args.path", g.status().message());
      r.path = *std::move(g);
      r.needs |= kNeedPath;
    }
    if (args.has_sockaddr()) {
      SockaddrCond sc;
      if (!args.sockaddr().family().empty()) {
        sc.family = SockaddrFamilyFromString(args.sockaddr().family());
      }
      if (!args.sockaddr().address().empty()) {
        auto g = FlatGlob::Compile(args.sockaddr().address());
        if (!g.ok())
          return PolicyError(source_, label, "match.args.sockaddr.address", g.status().message());
        sc.address = *std::move(g);
      }
      if (args.sockaddr().has_port()) sc.port = static_cast<uint16_t>(args.sockaddr().port());
      r.sockaddr = std::move(sc);
      r.needs |= kNeedSockaddr;
    }
    if (args.has_fd() && args.fd() >= 0) r.fd = args.fd();
    for (const v1::ScalarCondition& sc : args.scalars()) {
      r.scalars.push_back(
          Rule::Scalar{static_cast<int>(sc.index()), sc.op(), sc.value(), sc.mask()});
    }
    r.needs |= ActionNeeds(pr.action());

    if (pr.match().syscalls().empty()) {
      any_rules.push_back(i);
    } else {
      for (const std::string& s : pr.match().syscalls()) by_syscall_[s].rules.push_back(i);
    }
  }
  // Syscalls with a layout get an entry even when no rule names them, so
  // that any-syscall rules with conditions report their needs for them.
  if (!any_rules.empty()) {
    for (const SyscallArgLayout& l : AllArgLayouts()) by_syscall_[l.syscall];
  }
  for (auto& [name, entry] : by_syscall_) {
    std::vector<int> merged;
    merged.reserve(entry.rules.size() + any_rules.size());
    std::merge(entry.rules.begin(), entry.rules.end(), any_rules.begin(), any_rules.end(),
               std::back_inserter(merged));
    entry.rules = std::move(merged);
    const SyscallArgLayout* l = ArgLayoutFor(name);
    const uint32_t provides = l == nullptr ? kNeedNothing : l->Provides();
    for (int i : entry.rules) entry.needs |= rules_[i].needs;
    entry.needs &= provides;
  }
  any_syscall_.rules = std::move(any_rules);
  any_syscall_.needs = kNeedNothing;  // no layout: nothing the engine could decode
  return absl::OkStatus();
}

const CompiledPolicy::SyscallEntry& CompiledPolicy::EntryFor(absl::string_view syscall) const {
  auto it = by_syscall_.find(syscall);
  return it == by_syscall_.end() ? any_syscall_ : it->second;
}

uint32_t CompiledPolicy::Needs(absl::string_view syscall) const { return EntryFor(syscall).needs; }

bool ScalarHolds(v1::ScalarCondition::Op op, uint64_t arg, uint64_t value, uint64_t mask) {
  switch (op) {
    case v1::ScalarCondition::EQ:
      return arg == value;
    case v1::ScalarCondition::NE:
      return arg != value;
    case v1::ScalarCondition::LT:
      return arg < value;
    case v1::ScalarCondition::LE:
      return arg <= value;
    case v1::ScalarCondition::GT:
      return arg > value;
    case v1::ScalarCondition::GE:
      return arg >= value;
    case v1::ScalarCondition::MASKED_EQ:
      return (arg & mask) == value;
    default:
      return false;  // rejected by ValidatePolicy
  }
}

bool CompiledPolicy::Matches(const Rule& r, const SyscallEvent& ev) const {
  for (const Rule::Scalar& s : r.scalars) {
    if (!ScalarHolds(s.op, ev.args[s.index], s.value, s.mask)) return false;
  }
  if (!r.annotations.empty() || r.id || r.metadata) {
    const ContainerInfo* c = ev.container;
    if (c == nullptr) return false;
    if (r.id && !r.id->Matches(c->id)) return false;
    if (r.metadata && !r.metadata->Matches(c->metadata)) return false;
    for (const auto& [key, glob] : r.annotations) {
      auto it = c->annotations.find(key);
      if (it == c->annotations.end() || !glob.Matches(it->second)) return false;
    }
  }
  if (r.path) {
    // A relative path is matched in its resolved absolute form.
    const std::optional<std::string>& p1 = ev.abs_path ? ev.abs_path : ev.path;
    const std::optional<std::string>& p2 = ev.abs_path2 ? ev.abs_path2 : ev.path2;
    const bool hit = (p1 && r.path->Matches(*p1)) || (p2 && r.path->Matches(*p2));
    if (!hit) return false;
  }
  if (r.sockaddr) {
    if (!ev.sockaddr) return false;
    const Sockaddr& sa = *ev.sockaddr;
    if (r.sockaddr->family != 0 && sa.family != r.sockaddr->family) return false;
    if (r.sockaddr->address && !r.sockaddr->address->Matches(sa.address)) return false;
    if (r.sockaddr->port && sa.port != r.sockaddr->port) return false;
  }
  if (r.fd) {
    int64_t fd;
    if (ev.fd) {
      fd = *ev.fd;
    } else {
      const SyscallArgLayout* l = ArgLayoutFor(ev.syscall);
      if (l == nullptr || l->fd < 0) return false;
      fd = static_cast<int32_t>(ev.args[l->fd]);  // fds are C ints
    }
    if (fd != *r.fd) return false;
  }
  return true;
}

CompiledPolicy::Verdict CompiledPolicy::Evaluate(const SyscallEvent& ev, int first_rule) const {
  const SyscallEntry& e = EntryFor(ev.syscall);
  for (int i : e.rules) {
    if (i < first_rule) continue;
    if (Matches(rules_[i], ev)) {
      const v1::Rule& pr = proto_.rules(i);
      return Verdict{&pr.action(), pr.name(), i};
    }
  }
  if (ev.runtime_phase) return Verdict{&runtime_allow_, "runtime-init", -2};
  return Verdict{&proto_.default_action(), "default", -1};
}

}  // namespace seccomp_agent
