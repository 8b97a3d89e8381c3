#include "agent/engine/substitute_plan.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/common/regex.h"

namespace seccomp_agent {

using injector::Substitute;

namespace {

bool IsNative(const SyscallEvent& ev) { return ev.arch == AUDIT_ARCH_X86_64; }

// "/a/b" matches prefix "/a" (border "/") and "/a" itself; prefix "/" or
// one ending in "/" matches anything under it.
bool PrefixOnBorder(const std::string& path, const std::string& prefix) {
  if (prefix.empty() || path.compare(0, prefix.size(), prefix) != 0) return false;
  if (path.size() == prefix.size() || prefix.back() == '/') return true;
  return path[prefix.size()] == '/';
}

struct InetKey {
  int family = 0;
  uint8_t addr[16] = {};
  uint16_t port = 0;
};

absl::StatusOr<InetKey> ParseInet(const std::string& text) {
  InetKey k;
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("bad [ADDR6]:PORT \"", text, "\""));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    k.family = AF_INET6;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad ADDR:PORT \"", text, "\""));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    k.family = AF_INET;
  }
  uint32_t p;
  if (!absl::SimpleAtoi(port, &p) || p > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in \"", text, "\""));
  }
  k.port = static_cast<uint16_t>(p);
  if (inet_pton(k.family, host.c_str(), k.addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad address in \"", text, "\""));
  }
  return k;
}

std::string UnixSockaddr(const std::string& path) {
  sockaddr_un un;
  memset(&un, 0, sizeof(un));
  un.sun_family = AF_UNIX;
  size_t len;
  if (!path.empty() && path[0] == '@') {  // abstract: leading NUL, no terminator
    memcpy(un.sun_path + 1, path.data() + 1, path.size() - 1);
    len = offsetof(sockaddr_un, sun_path) + path.size();
  } else {
    memcpy(un.sun_path, path.data(), path.size());
    len = offsetof(sockaddr_un, sun_path) + path.size() + 1;
  }
  return std::string(reinterpret_cast<const char*>(&un), len);
}

std::string InetSockaddr(const InetKey& k, const std::vector<uint8_t>& original) {
  if (k.family == AF_INET) {
    sockaddr_in in;
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    in.sin_port = htons(k.port);
    memcpy(&in.sin_addr, k.addr, 4);
    return std::string(reinterpret_cast<const char*>(&in), sizeof(in));
  }
  sockaddr_in6 in6;
  memset(&in6, 0, sizeof(in6));
  // Keep flowinfo and scope id of the task's address.
  if (original.size() >= sizeof(in6)) memcpy(&in6, original.data(), sizeof(in6));
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(k.port);
  memcpy(&in6.sin6_addr, k.addr, 16);
  return std::string(reinterpret_cast<const char*>(&in6), sizeof(in6));
}

// Compiled patterns by text. The policy is their only source (plugins may
// not send redact_regex), so the cache stays small; a bound keeps reloads
// of changing policies from growing it. Entries are shared: clearing the
// cache never frees a pattern another worker is matching with.
absl::StatusOr<std::shared_ptr<const re2::RE2>> CachedRegex(const std::string& pattern) {
  constexpr size_t kMaxCached = 256;
  static std::mutex mu;
  static auto* cache = new std::map<std::string, std::shared_ptr<const re2::RE2>>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(pattern);
  if (it != cache->end()) return it->second;
  auto re = CompileRegex(pattern);
  if (!re.ok()) return re.status();
  if (cache->size() >= kMaxCached) cache->clear();
  std::shared_ptr<const re2::RE2> shared = *std::move(re);
  cache->emplace(pattern, shared);
  return shared;
}

}  // namespace

injector::InjectorOptions InjectorOptionsFromProto(const v1::InjectionSettings& settings) {
  injector::InjectorOptions o;
  switch (settings.mode()) {
    case v1::InjectionSettings::KERNEL:
      o.mode = injector::Mode::kKernel;
      break;
    case v1::InjectionSettings::EMULATE:
      o.mode = injector::Mode::kEmulate;
      break;
    default:
      o.mode = injector::Mode::kAuto;
  }
  o.strict = settings.strict();
  o.strict_errno = settings.strict_errno() > 0 ? settings.strict_errno() : EPERM;
  return o;
}

absl::StatusOr<std::string> SockaddrFromText(const std::string& text, int family_hint) {
  if (family_hint == AF_UNIX) {
    if (text.empty() || text.size() > sizeof(sockaddr_un::sun_path) - 1) {
      return absl::InvalidArgumentError(absl::StrCat("bad unix socket path \"", text, "\""));
    }
    return UnixSockaddr(text);
  }
  auto k = ParseInet(text);
  if (!k.ok()) return k.status();
  return InetSockaddr(*k, {});
}

absl::StatusOr<Plan> PlanRedirectOpen(const SyscallEvent& ev, const v1::RedirectOpen& action) {
  if (!IsNative(ev) || (ev.nr != __NR_openat && ev.nr != __NR_open)) {
    return absl::InvalidArgumentError(
        absl::StrCat("redirect_open applies to openat and open, not ", ev.syscall));
  }
  if (!ev.path.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("redirect_open: path not decoded: ", ev.decode_error));
  }
  // The map is keyed on the path as the kernel resolves it for the task
  // (`//etc/shadow`, `/etc/./hosts`, `shadow` in /etc, `/data/../x` all
  // meet their key), never on the spelling the task chose.
  const std::string& path = ev.abs_path ? *ev.abs_path : *ev.path;
  Plan plan;
  std::string target = path;
  auto it = action.exact().find(path);
  if (it != action.exact().end()) {
    target = it->second;
    plan.rewritten = true;
    plan.note = absl::StrCat("exact ", path, " -> ", target);
  } else {
    const std::string* best = nullptr;
    for (const auto& [from, to] : action.prefix()) {
      if (PrefixOnBorder(path, from) && (best == nullptr || from.size() > best->size())) {
        best = &from;
      }
    }
    if (best != nullptr) {
      const std::string& to = action.prefix().at(*best);
      std::string rest = path.substr(best->size());
      // "/a/" -> "/b" on "/a/x": keep one "/" between.
      if (!to.empty() && to.back() != '/' && !rest.empty() && rest[0] != '/' &&
          best->back() == '/') {
        rest.insert(rest.begin(), '/');
      }
      target = to + rest;
      plan.rewritten = true;
      plan.note = absl::StrCat("prefix ", *best, " -> ", to);
    } else {
      plan.note = "no mapping";
    }
  }
  if (target.empty()) return absl::InvalidArgumentError("redirect_open: empty target path");
  if (ev.nr == __NR_openat) {
    // dirfd is a 32-bit int (Go passes AT_FDCWD sign-extended, C not).
    int dirfd = static_cast<int>(static_cast<int32_t>(ev.args[0]));
    if (target[0] == '/') dirfd = AT_FDCWD;  // absolute: the dirfd plays no part
    plan.sub = Substitute::Openat(dirfd, target, static_cast<int>(ev.args[2]),
                                  static_cast<mode_t>(ev.args[3]));
  } else {
    plan.sub =
        Substitute::Open(target, static_cast<int>(ev.args[1]), static_cast<mode_t>(ev.args[2]));
  }
  return plan;
}

absl::StatusOr<Plan> PlanRewriteBind(const SyscallEvent& ev, const v1::RewriteBind& action) {
  if (!IsNative(ev) || ev.nr != __NR_bind) {
    return absl::InvalidArgumentError(
        absl::StrCat("rewrite_bind applies to bind, not ", ev.syscall));
  }
  if (!ev.sockaddr.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("rewrite_bind: sockaddr not decoded: ", ev.decode_error));
  }
  const Sockaddr& sa = *ev.sockaddr;
  const int fd = static_cast<int>(static_cast<int32_t>(ev.args[0]));
  Plan plan;
  std::string bytes(sa.raw.begin(), sa.raw.end());  // default: the agent's copy, unchanged
  plan.note = "no mapping";
  if (sa.family == AF_UNIX) {
    auto it = action.map().find(sa.address);
    if (it != action.map().end()) {
      auto b = SockaddrFromText(it->second, AF_UNIX);
      if (!b.ok()) return b.status();
      bytes = *b;
      plan.rewritten = true;
      plan.note = absl::StrCat(sa.address, " -> ", it->second);
    }
  } else if ((sa.family == AF_INET || sa.family == AF_INET6) && sa.port.has_value() &&
             sa.raw.size() >= (sa.family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6))) {
    const uint8_t* addr = sa.family == AF_INET ? sa.raw.data() + offsetof(sockaddr_in, sin_addr)
                                               : sa.raw.data() + offsetof(sockaddr_in6, sin6_addr);
    const size_t alen = sa.family == AF_INET ? 4 : 16;
    for (const auto& [from, to] : action.map()) {
      auto k = ParseInet(from);
      if (!k.ok() || k->family != sa.family || k->port != *sa.port ||
          memcmp(k->addr, addr, alen) != 0) {
        continue;
      }
      auto t = ParseInet(to);
      if (!t.ok()) return t.status();
      if (t->family != sa.family) {
        return absl::InvalidArgumentError(
            absl::StrCat("rewrite_bind: ", from, " -> ", to, " changes the address family"));
      }
      bytes = InetSockaddr(*t, sa.raw);
      plan.rewritten = true;
      plan.note = absl::StrCat(from, " -> ", to);
      break;
    }
  }
  if (bytes.empty()) return absl::FailedPreconditionError("rewrite_bind: empty sockaddr");
  plan.sub = Substitute::Bind(fd, bytes);
  return plan;
}

absl::StatusOr<Plan> PlanReplaceWrite(const SyscallEvent& ev, const v1::ReplaceWrite& action) {
  if (!IsNative(ev) || ev.nr != __NR_write) {
    return absl::InvalidArgumentError(
        absl::StrCat("replace_write applies to write, not ", ev.syscall));
  }
  const int fd = static_cast<int>(static_cast<int32_t>(ev.args[0]));
  const uint64_t count = ev.args[2];
  Plan plan;
  plan.rewritten = true;
  std::string out;
  switch (action.mode_case()) {
    case v1::ReplaceWrite::kReplace:
      out = action.replace();
      plan.note = absl::StrCat("replace ", count, " -> ", out.size(), " bytes");
      break;
    case v1::ReplaceWrite::kRedactRegex: {
      if (!ev.write_bytes.has_value()) {
        return absl::FailedPreconditionError(
            absl::StrCat("replace_write: bytes not decoded: ", ev.decode_error));
      }
      if (ev.write_bytes->size() < count) {
        return absl::FailedPreconditionError(
            absl::StrCat("replace_write: redaction needs all ", count, " bytes, only ",
                         ev.write_bytes->size(), " were captured (raise max_write_capture)"));
      }
      const absl::string_view in = absl::string_view(*ev.write_bytes).substr(0, count);
      auto re = CachedRegex(action.redact_regex());
      if (!re.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "replace_write: bad regex \"", action.redact_regex(), "\": ", re.status().message()));
      }
      out = ReplaceAllLiteral(in, **re,
                              action.redaction().empty() ? "[REDACTED]" : action.redaction());
      plan.rewritten = out != in;
      plan.note = plan.rewritten ? absl::StrCat("redacted ", count, " -> ", out.size(), " bytes")
                                 : "no match";
      break;
    }
    default:
      return absl::InvalidArgumentError("replace_write: neither replace nor redact_regex");
  }
  plan.sub = Substitute::Write(fd, out, count);
  return plan;
}

absl::StatusOr<Plan> PlanAction(const SyscallEvent& ev, const v1::Action& action) {
  switch (action.kind_case()) {
    case v1::Action::kRedirectOpen:
      return PlanRedirectOpen(ev, action.redirect_open());
    case v1::Action::kRewriteBind:
      return PlanRewriteBind(ev, action.rewrite_bind());
    case v1::Action::kReplaceWrite:
      return PlanReplaceWrite(ev, action.replace_write());
    default:
      return absl::InvalidArgumentError("not a substitution action");
  }
}

}  // namespace seccomp_agent
