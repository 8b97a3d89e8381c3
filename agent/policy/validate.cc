// Load-time validation: everything that can be wrong with a policy is
// reported here, before the policy replaces a running one. Messages name the
// file, the rule and the field (see PolicyError).
#include <arpa/inet.h>
#include <errno.h>
#include <seccomp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/regex.h"
#include "agent/common/status.h"
#include "agent/policy/action_checks.h"
#include "agent/policy/glob.h"
#include "agent/policy/loader.h"
#include "agent/policy/policy.h"
#include "agent/model/syscall_args.h"
#include "agent/policy/privileged_rules.h"

namespace seccomp_agent {
namespace {

constexpr uint32_t kMaxPluginTimeoutMs = 60000;

bool ValidPluginAddress(absl::string_view a) {
  if (absl::StartsWith(a, "unix://")) {
    absl::string_view path = a.substr(7);
    return IsNormalizedAbsolute(path) && path != "/" && path.size() < sizeof(sockaddr_un::sun_path);
  }
  size_t colon = a.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  absl::string_view host = a.substr(0, colon);
  uint32_t port;
  if (!ParsePort(a.substr(colon + 1), 1, &port)) return false;
  if (host.front() == '[') {
    in6_addr a6;
    return host.back() == ']' &&
           inet_pton(AF_INET6, std::string(host.substr(1, host.size() - 2)).c_str(), &a6) == 1;
  }
  for (char c : host) {
    if (!(absl::ascii_isalnum(c) || c == '.' || c == '-' || c == '_')) return false;
  }
  return true;
}

class Validator {
 public:
  Validator(const v1::Policy& p, absl::string_view source) : p_(p), source_(source) {}

  absl::Status Run() {
    if (p_.version() != 1) {
      return Err(
          "", "version",
          absl::StrCat("must be 1, got ", p_.version(), p_.version() == 0 ? " (missing?)" : ""));
    }
    SA_RETURN_IF_ERROR(CheckDefault());
    SA_RETURN_IF_ERROR(CheckInjection());
    SA_RETURN_IF_ERROR(CheckRoots());
    SA_RETURN_IF_ERROR(CheckPlugins());
    absl::flat_hash_set<std::string> names;
    for (int i = 0; i < p_.rules_size(); ++i) {
      const v1::Rule& r = p_.rules(i);
      const std::string label = RuleLabel(i, r.name());
      if (r.name().empty()) return Err(label, "name", "required (a unique, non-empty name)");
      if (!names.insert(r.name()).second) {
        return Err(label, "name", "duplicate rule name (names must be unique)");
      }
      SA_RETURN_IF_ERROR(CheckRule(r, label));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Err(absl::string_view rule, absl::string_view field, absl::string_view msg) const {
    return PolicyError(source_, rule, field, msg);
  }

  absl::Status CheckDefault() {
    if (!p_.has_default_action()) {
      return Err("", "default_action", "required (one of allow, deny, return, log)");
    }
    const v1::Action& a = p_.default_action();
    switch (a.kind_case()) {
      case v1::Action::kAllow:
      case v1::Action::kLog:
        return absl::OkStatus();
      case v1::Action::kReturn:
        return CheckReturn(a.return_(), "", "default_action.return.value");
      case v1::Action::kDeny:
        return CheckDeny(a.deny(), "", "default_action.deny.errno");
      case v1::Action::KIND_NOT_SET:
        return Err("", "default_action", "required (one of allow, deny, return, log)");
      default:
        // Substitutions only make sense for the syscalls they rewrite, and a
        // plugin is consulted from a rule: neither can decide "everything".
        return Err("", "default_action",
                   absl::StrCat("must be allow, deny, return or log, got ", ActionKindName(a),
                                " (substitutions and plugins belong in rules)"));
    }
  }

  absl::Status CheckDeny(const v1::Deny& d, absl::string_view rule, absl::string_view field) {
    if (!ValidErrno(d.errno_code())) {
      return Err(rule, field, absl::StrCat("errno must be 1..4095, got ", d.errno_code()));
    }
    return absl::OkStatus();
  }

  // A spoofed return of -1..-4095 reads as an error to libc (-errno), which
  // is what deny is for; refuse the ambiguity.
  absl::Status CheckReturn(const v1::Return& r, absl::string_view rule, absl::string_view field) {
    if (ReturnReadsAsErrno(r.value())) {
      return Err(rule, field,
                 absl::StrCat(r.value(), " would read as -errno; use deny: {errno: ",
                              ErrnoName(static_cast<int>(-r.value())), "}"));
    }
    return absl::OkStatus();
  }

  absl::Status CheckInjection() {
    const v1::InjectionSettings& in = p_.injection();
    if (!v1::InjectionSettings::Mode_IsValid(in.mode())) {
      return Err("", "injection.mode", absl::StrCat("unknown mode ", in.mode()));
    }
    if (in.strict_errno() != 0 && !ValidErrno(in.strict_errno())) {
      return Err("", "injection.strict_errno",
                 absl::StrCat("must be 1..4095, got ", in.strict_errno()));
    }
    return absl::OkStatus();
  }

  absl::Status CheckRoots() {
    for (int i = 0; i < p_.redirect_roots_size(); ++i) {
      const std::string& root = p_.redirect_roots(i);
      const std::string field = absl::StrCat("redirect_roots[", i, "]");
      if (!IsNormalizedAbsolute(root)) {
        return Err("", field,
                   absl::StrCat("\"", root,
                                "\" must be an absolute, normalized directory (no \"..\", \".\", "
                                "\"//\" or trailing \"/\")"));
      }
      if (root == "/") {
        return Err("", field, "\"/\" would allow any redirect target; name a directory");
      }
    }
    return absl::OkStatus();
  }

  // unix sockets: plaintext (their file mode is the access control).
  // host:port: TLS, or plaintext only when the policy says insecure: true.
  absl::Status CheckPluginTransport(const v1::PluginConfig& pc, const std::string& label) {
    const bool unix_socket = absl::StartsWith(pc.address(), "unix://");
    if (unix_socket && pc.has_tls()) {
      return Err(label, "tls",
                 "is for host:port addresses (a unix socket is protected by its "
                 "file mode)");
    }
    if (unix_socket) return absl::OkStatus();
    if (!pc.has_tls() && !pc.insecure()) {
      return Err(label, "address",
                 absl::StrCat("plaintext TCP to \"", pc.address(),
                              "\" refused: set tls.ca_file (and tls.cert_file + tls.key_file "
                              "for mTLS), or insecure: true"));
    }
    if (pc.has_tls() && pc.insecure()) {
      return Err(label, "insecure", "tls and insecure: true exclude each other");
    }
    if (!pc.has_tls()) return absl::OkStatus();
    const v1::PluginTls& t = pc.tls();
    if (!IsNormalizedAbsolute(t.ca_file())) {
      return Err(label, "tls.ca_file", "required: an absolute path to a PEM CA bundle");
    }
    if (t.cert_file().empty() != t.key_file().empty()) {
      return Err(label, "tls", "cert_file and key_file go together (mTLS)");
    }
    if (!t.cert_file().empty() &&
        (!IsNormalizedAbsolute(t.cert_file()) || !IsNormalizedAbsolute(t.key_file()))) {
      return Err(label, "tls", "cert_file and key_file must be absolute paths");
    }
    return absl::OkStatus();
  }

  absl::Status CheckPlugins() {
    absl::flat_hash_set<std::string> names;
    for (int i = 0; i < p_.plugins_size(); ++i) {
      const v1::PluginConfig& pc = p_.plugins(i);
      const std::string label = ItemLabel("plugins", i, pc.name());
      if (pc.name().empty()) return Err(label, "name", "required (a unique, non-empty name)");
      if (!names.insert(pc.name()).second) return Err(label, "name", "duplicate plugin name");
      if (!ValidPluginAddress(pc.address())) {
        return Err(label, "address",
                   absl::StrCat("\"", pc.address(),
                                "\" is not \"unix:///absolute/path\" or \"host:port\""));
      }
      SA_RETURN_IF_ERROR(CheckPluginTransport(pc, label));
      if (pc.timeout_ms() > kMaxPluginTimeoutMs) {
        return Err(label, "timeout_ms",
                   absl::StrCat("must be at most ", kMaxPluginTimeoutMs, " (0: default 100)"));
      }
      if (!v1::PluginConfig::OnError_IsValid(pc.on_error())) {
        return Err(label, "on_error", absl::StrCat("unknown value ", pc.on_error()));
      }
      if (pc.error_errno() != 0 && !ValidErrno(pc.error_errno())) {
        return Err(label, "error_errno", absl::StrCat("must be 1..4095, got ", pc.error_errno()));
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckRule(const v1::Rule& r, const std::string& label) {
    const v1::Match& m = r.match();
    // Containers.
    const v1::ContainerMatch& cm = m.containers();
    for (const auto& kv : cm.annotations()) {
      const std::string field = absl::StrCat("match.containers.annotations[\"", kv.first, "\"]");
      if (kv.first.empty()) return Err(label, field, "annotation key must not be empty");
      SA_RETURN_IF_ERROR(CheckFlatGlob(kv.second, label, field));
    }
    SA_RETURN_IF_ERROR(CheckFlatGlob(cm.id(), label, "match.containers.id"));
    SA_RETURN_IF_ERROR(CheckFlatGlob(cm.metadata(), label, "match.containers.metadata"));
    // Syscalls.
    absl::flat_hash_set<std::string> seen;
    for (int j = 0; j < m.syscalls_size(); ++j) {
      const std::string& s = m.syscalls(j);
      const std::string field = absl::StrCat("match.syscalls[", j, "]");
      if (s.empty() || seccomp_syscall_resolve_name(s.c_str()) == __NR_SCMP_ERROR) {
        return Err(label, field, absl::StrCat("unknown syscall \"", s, "\""));
      }
      if (!seen.insert(s).second)
        return Err(label, field, absl::StrCat("\"", s, "\" listed twice"));
    }
    // Arguments.
    const v1::ArgMatch& args = m.args();
    if (!args.path().empty()) {
      if (args.path()[0] != '/') {
        return Err(label, "match.args.path",
                   absl::StrCat("glob \"", args.path(),
                                "\" must be absolute (relative paths in events are matched "
                                "literally and never match an absolute glob)"));
      }
      auto g = PathGlob::Compile(args.path());
      if (!g.ok()) return Err(label, "match.args.path", g.status().message());
      SA_RETURN_IF_ERROR(CheckLayouts(m, label, "match.args.path", "path argument",
                                      [](const SyscallArgLayout& l) { return l.path >= 0; }));
    }
    if (args.has_sockaddr()) {
      const v1::SockaddrMatch& sm = args.sockaddr();
      if (!sm.family().empty() && SockaddrFamilyFromString(sm.family()) < 0) {
        return Err(label, "match.args.sockaddr.family",
                   absl::StrCat("unknown family \"", sm.family(),
                                "\" (AF_INET, AF_INET6, AF_UNIX or inet, inet6, unix)"));
      }
      SA_RETURN_IF_ERROR(CheckFlatGlob(sm.address(), label, "match.args.sockaddr.address"));
      if (sm.has_port() && sm.port() > 65535) {
        return Err(label, "match.args.sockaddr.port",
                   absl::StrCat("must be 0..65535, got ", sm.port()));
      }
      if (sm.has_port() && !sm.family().empty() &&
          SockaddrFamilyFromString(sm.family()) == AF_UNIX) {
        return Err(label, "match.args.sockaddr.port", "AF_UNIX addresses have no port");
      }
      SA_RETURN_IF_ERROR(CheckLayouts(m, label, "match.args.sockaddr", "sockaddr argument",
                                      [](const SyscallArgLayout& l) { return l.sockaddr >= 0; }));
    }
    if (args.has_fd()) {
      if (args.fd() < -1 || args.fd() > INT32_MAX) {
        return Err(
            label, "match.args.fd",
            absl::StrCat("must be a file descriptor 0..2147483647 (-1: none), got ", args.fd()));
      }
      if (args.fd() >= 0) {
        SA_RETURN_IF_ERROR(CheckLayouts(m, label, "match.args.fd", "fd argument",
                                        [](const SyscallArgLayout& l) { return l.fd >= 0; }));
      }
    }
    for (int j = 0; j < args.scalars_size(); ++j) {
      SA_RETURN_IF_ERROR(
          CheckScalar(args.scalars(j), label, absl::StrCat("match.args.scalars[", j, "]")));
    }
    return CheckAction(r, label);
  }

  // A scalar condition must be able to hold for some value, so that a
  // typo does not silently disable a rule.
  absl::Status CheckScalar(const v1::ScalarCondition& c, const std::string& label,
                           const std::string& field) {
    if (c.index() > 5) {
      return Err(label, absl::StrCat(field, ".index"),
                 absl::StrCat("must be 0..5, got ", c.index()));
    }
    using SC = v1::ScalarCondition;
    switch (c.op()) {
      case SC::EQ:
      case SC::NE:
      case SC::LE:
      case SC::GE:
        break;
      case SC::LT:
        if (c.value() == 0) return Err(label, field, "lt 0 can never hold");
        break;
      case SC::GT:
        if (c.value() == UINT64_MAX)
          return Err(label, field, "gt 18446744073709551615 can never hold");
        break;
      case SC::MASKED_EQ:
        if (c.mask() == 0)
          return Err(label, absl::StrCat(field, ".mask"), "masked_eq needs a non-zero mask");
        if ((c.value() & ~c.mask()) != 0) {
          return Err(label, absl::StrCat(field, ".value"),
                     absl::StrCat("value ", c.value(), " has bits outside mask ", c.mask(),
                                  ": (arg & mask) == value could never hold"));
        }
        return absl::OkStatus();
      default:
        return Err(label, absl::StrCat(field, ".op"),
                   "required: one of eq, ne, lt, le, gt, ge, masked_eq");
    }
    if (c.mask() != 0)
      return Err(label, absl::StrCat(field, ".mask"), "only meaningful with op masked_eq");
    return absl::OkStatus();
  }

  // Each listed syscall must have the argument a condition looks at.
  template <typename Pred>
  absl::Status CheckLayouts(const v1::Match& m, const std::string& label, absl::string_view field,
                            absl::string_view what, Pred has) {
    for (const std::string& s : m.syscalls()) {
      const SyscallArgLayout* l = ArgLayoutFor(s);
      if (l == nullptr || !has(*l)) {
        return Err(label, field,
                   absl::StrCat("syscall \"", s, "\" has no ", what,
                                " (the condition could never match it)"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckFlatGlob(const std::string& g, const std::string& label,
                             absl::string_view field) {
    if (g.empty()) return absl::OkStatus();
    auto c = FlatGlob::Compile(g);
    if (!c.ok()) return Err(label, field, c.status().message());
    return absl::OkStatus();
  }

  // Substitutions rewrite a specific syscall's arguments: the rule must name
  // only syscalls the substitution knows.
  absl::Status CheckAppliesTo(const v1::Rule& r, const std::string& label, absl::string_view kind,
                              bool (*applies)(absl::string_view), absl::string_view allowed) {
    if (r.match().syscalls().empty()) {
      return Err(label, "match.syscalls",
                 absl::StrCat("action ", kind, " needs a syscall list naming only ", allowed));
    }
    for (int j = 0; j < r.match().syscalls_size(); ++j) {
      if (!applies(r.match().syscalls(j))) {
        return Err(label, absl::StrCat("match.syscalls[", j, "]"),
                   absl::StrCat("action ", kind, " cannot apply to \"", r.match().syscalls(j),
                                "\" (only ", allowed, ")"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckMap(const std::optional<ActionProblem>& problem, const std::string& label) {
    if (!problem) return absl::OkStatus();
    return Err(label, absl::StrCat("action.", problem->field), problem->message);
  }

  absl::Status CheckAction(const v1::Rule& r, const std::string& label) {
    const v1::Action& a = r.action();
    switch (a.kind_case()) {
      case v1::Action::KIND_NOT_SET:
        return Err(label, "action",
                   "required (one of allow, deny, return, log, redirect_open, rewrite_bind, "
                   "replace_write, sysinfo, mknod, mount, setxattr, plugin)");
      case v1::Action::kAllow:
      case v1::Action::kLog:
        return absl::OkStatus();
      case v1::Action::kReturn:
        return CheckReturn(a.return_(), label, "action.return.value");
      case v1::Action::kDeny:
        return CheckDeny(a.deny(), label, "action.deny.errno");
      case v1::Action::kRedirectOpen: {
        SA_RETURN_IF_ERROR(
            CheckAppliesTo(r, label, "redirect_open", RedirectOpenAppliesTo, "open, openat"));
        const std::vector<std::string> roots(p_.redirect_roots().begin(),
                                             p_.redirect_roots().end());
        return CheckMap(CheckRedirectOpenMap(a.redirect_open(), roots), label);
      }
      case v1::Action::kRewriteBind: {
        SA_RETURN_IF_ERROR(CheckAppliesTo(r, label, "rewrite_bind", RewriteBindAppliesTo, "bind"));
        return CheckMap(CheckRewriteBindMap(a.rewrite_bind()), label);
      }
      case v1::Action::kReplaceWrite: {
        SA_RETURN_IF_ERROR(
            CheckAppliesTo(r, label, "replace_write", ReplaceWriteAppliesTo, "write"));
        const v1::ReplaceWrite& rw = a.replace_write();
        switch (rw.mode_case()) {
          case v1::ReplaceWrite::MODE_NOT_SET:
            return Err(label, "action.replace_write", "needs replace or redact_regex");
          case v1::ReplaceWrite::kReplace:
            if (!rw.redaction().empty()) {
              return Err(label, "action.replace_write.redaction",
                         "only meaningful with redact_regex");
            }
            return absl::OkStatus();
          case v1::ReplaceWrite::kRedactRegex:
            return CheckRegex(rw.redact_regex(), label);
        }
        return absl::OkStatus();
      }
      case v1::Action::kSysinfo:
        SA_RETURN_IF_ERROR(CheckAppliesTo(r, label, "sysinfo", SysinfoAppliesTo, "sysinfo"));
        return CheckPrivileged(label, "action.sysinfo", CheckSysinfo(a.sysinfo()));
      case v1::Action::kMknod:
        SA_RETURN_IF_ERROR(CheckAppliesTo(r, label, "mknod", MknodAppliesTo, "mknod, mknodat"));
        return CheckPrivileged(label, "action.mknod", CheckMknod(a.mknod()));
      case v1::Action::kMount:
        SA_RETURN_IF_ERROR(CheckAppliesTo(r, label, "mount", MountAppliesTo, "mount"));
        return CheckPrivileged(label, "action.mount", CheckMount(a.mount()));
      case v1::Action::kSetxattr:
        SA_RETURN_IF_ERROR(CheckAppliesTo(r, label, "setxattr", SetxattrAppliesTo,
                                          "setxattr, lsetxattr, fsetxattr"));
        return CheckPrivileged(label, "action.setxattr", CheckSetxattr(a.setxattr()));
      case v1::Action::kPlugin: {
        const std::string& name = a.plugin().name();
        if (name.empty()) return Err(label, "action.plugin.name", "required");
        for (const v1::PluginConfig& pc : p_.plugins()) {
          if (pc.name() == name) return absl::OkStatus();
        }
        return Err(label, "action.plugin.name",
                   absl::StrCat("plugin \"", name, "\" is not declared in plugins"));
      }
    }
    return Err(label, "action", "unknown action kind");
  }

  absl::Status CheckPrivileged(const std::string& label, absl::string_view action,
                               const std::optional<ActionProblem>& problem) {
    if (!problem) return absl::OkStatus();
    return Err(label, absl::StrCat(action, ".", problem->field), problem->message);
  }

  // The regex must compile with RE2, the engine that runs it (so no
  // backreferences or lookaround, which cannot run in linear time). A
  // pattern that matches the empty string would "redact" between every
  // byte, so it is refused.
  absl::Status CheckRegex(const std::string& re, const std::string& label) {
    const char* field = "action.replace_write.redact_regex";
    if (re.empty()) return Err(label, field, "must not be empty");
    auto compiled = CompileRegex(re);
    if (!compiled.ok()) {
      return Err(label, field,
                 absl::StrCat("\"", re, "\" does not compile: ", compiled.status().message()));
    }
    if (re2::RE2::PartialMatch("", **compiled)) {
      return Err(label, field, absl::StrCat("\"", re, "\" matches the empty string"));
    }
    return absl::OkStatus();
  }

  const v1::Policy& p_;
  std::string source_;
};

}  // namespace

int SockaddrFamilyFromString(absl::string_view s) {
  if (s == "AF_INET" || s == "inet") return AF_INET;
  if (s == "AF_INET6" || s == "inet6") return AF_INET6;
  if (s == "AF_UNIX" || s == "unix" || s == "AF_LOCAL") return AF_UNIX;
  return -1;
}

absl::Status ValidatePolicy(const v1::Policy& policy, absl::string_view source) {
  return Validator(policy, source).Run();
}

}  // namespace seccomp_agent
