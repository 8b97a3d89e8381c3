#include "agent/policy/action_checks.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace seccomp_agent {

namespace v1 = ::seccompagent::v1;

bool ValidErrno(int64_t e) { return e >= 1 && e <= kMaxErrno; }

bool ReturnReadsAsErrno(int64_t value) { return value < 0 && value >= -kMaxErrno; }

bool IsNormalizedAbsolute(absl::string_view p) {
  if (p.empty() || p[0] != '/' || p.find('\0') != absl::string_view::npos) return false;
  if (p == "/") return true;
  if (p.back() == '/') return false;
  size_t i = 1;
  while (i <= p.size()) {
    size_t end = p.find('/', i);
    if (end == absl::string_view::npos) end = p.size();
    absl::string_view c = p.substr(i, end - i);
    if (c.empty() || c == "." || c == "..") return false;
    i = end + 1;
  }
  return true;
}

bool InsideRoot(absl::string_view path, absl::string_view root) {
  return path == root ||
         (absl::StartsWith(path, root) && path.size() > root.size() && path[root.size()] == '/');
}

bool ParsePort(absl::string_view s, uint32_t min, uint32_t* port) {
  if (s.empty() || s.size() > 5) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return absl::SimpleAtoi(s, port) && *port >= min && *port <= 65535;
}

namespace {

absl::StatusOr<int> ParseUnixEndpoint(absl::string_view s) {
  if (s.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unix socket path longer than ", sizeof(sockaddr_un::sun_path) - 1, " bytes"));
  }
  if (s.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("unix socket name contains a NUL byte");
  }
  if (s[0] == '/' && !IsNormalizedAbsolute(s)) {
    return absl::InvalidArgumentError(
        "unix socket path must be normalized (no \"..\", \".\", \"//\")");
  }
  if (s.size() == 1) return absl::InvalidArgumentError("empty abstract socket name");
  return AF_UNIX;
}

}  // namespace

absl::StatusOr<int> ParseBindEndpoint(absl::string_view s) {
  if (!s.empty() && (s[0] == '/' || s[0] == '@')) return ParseUnixEndpoint(s);
  const absl::Status bad = absl::InvalidArgumentError(
      absl::StrCat("\"", s, "\" is not ADDR:PORT (\"127.0.0.1:8080\", \"[::1]:8080\") or an ",
                   "absolute unix socket path"));
  uint32_t port = 0;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find("]:");
    in6_addr a6;
    if (close == absl::string_view::npos ||
        inet_pton(AF_INET6, std::string(s.substr(1, close - 1)).c_str(), &a6) != 1 ||
        !ParsePort(s.substr(close + 2), 0, &port)) {
      return bad;
    }
    return AF_INET6;
  }
  size_t colon = s.rfind(':');
  in_addr a4;
  if (colon == absl::string_view::npos ||
      inet_pton(AF_INET, std::string(s.substr(0, colon)).c_str(), &a4) != 1 ||
      !ParsePort(s.substr(colon + 1), 0, &port)) {
    return bad;
  }
  return AF_INET;
}

const char* FamilyName(int f) {
  return f == AF_INET ? "AF_INET" : f == AF_INET6 ? "AF_INET6" : "AF_UNIX";
}

bool RedirectOpenAppliesTo(absl::string_view s) { return s == "open" || s == "openat"; }
bool RewriteBindAppliesTo(absl::string_view s) { return s == "bind"; }
bool ReplaceWriteAppliesTo(absl::string_view s) { return s == "write"; }

namespace {

std::optional<ActionProblem> CheckRedirectTarget(const std::string& target,
                                                 const std::vector<std::string>& roots,
                                                 const std::string& field, bool prefix) {
  absl::string_view t = target;
  if (prefix && t.size() > 1 && t.back() == '/') t.remove_suffix(1);
  if (!IsNormalizedAbsolute(t)) {
    return ActionProblem{field, absl::StrCat("target \"", absl::CHexEscape(target),
                                             "\" must be an absolute, normalized path (no "
                                             "\"..\", \".\", \"//\")")};
  }
  for (const std::string& root : roots) {
    if (InsideRoot(t, root)) return std::nullopt;
  }
  return ActionProblem{
      field,
      absl::StrCat("target \"", target, "\" is outside every redirect root (",
                   roots.empty() ? "redirect_roots is empty" : absl::StrJoin(roots, ", "), ")")};
}

std::optional<ActionProblem> CheckRedirectPrefix(const std::string& key, const std::string& target,
                                                 const std::vector<std::string>& roots) {
  const std::string field = absl::StrCat("redirect_open.prefix[\"", absl::CHexEscape(key), "\"]");
  absl::string_view k = key;
  const bool k_slash = k.size() > 1 && k.back() == '/';
  if (k_slash) k.remove_suffix(1);
  if (!IsNormalizedAbsolute(k) || k == "/") {
    return ActionProblem{
        field, "source prefix must be an absolute, normalized directory other than \"/\""};
  }
  const bool v_slash = target.size() > 1 && target.back() == '/';
  if (k_slash != v_slash) {
    return ActionProblem{field, "source and target must both end in \"/\" or both not"};
  }
  return CheckRedirectTarget(target, roots, field, true);
}

}  // namespace

std::optional<ActionProblem> CheckRedirectOpenMap(const v1::RedirectOpen& ro,
                                                  const std::vector<std::string>& roots) {
  if (ro.exact().empty() && ro.prefix().empty()) {
    return ActionProblem{"redirect_open", "needs at least one exact or prefix entry"};
  }
  for (const auto& kv : ro.exact()) {
    const std::string field =
        absl::StrCat("redirect_open.exact[\"", absl::CHexEscape(kv.first), "\"]");
    if (!IsNormalizedAbsolute(kv.first)) {
      return ActionProblem{field, "source must be an absolute, normalized path"};
    }
    if (auto p = CheckRedirectTarget(kv.second, roots, field, false)) return p;
  }
  for (const auto& kv : ro.prefix()) {
    if (auto p = CheckRedirectPrefix(kv.first, kv.second, roots)) return p;
  }
  return std::nullopt;
}

std::optional<ActionProblem> CheckRewriteBindMap(const v1::RewriteBind& rb) {
  if (rb.map().empty()) return ActionProblem{"rewrite_bind.map", "needs at least one entry"};
  for (const auto& kv : rb.map()) {
    const std::string field =
        absl::StrCat("rewrite_bind.map[\"", absl::CHexEscape(kv.first), "\"]");
    absl::StatusOr<int> from = ParseBindEndpoint(kv.first);
    if (!from.ok()) return ActionProblem{field, std::string(from.status().message())};
    absl::StatusOr<int> to = ParseBindEndpoint(kv.second);
    if (!to.ok()) return ActionProblem{field, absl::StrCat("target ", to.status().message())};
    if (*from != *to) {
      return ActionProblem{field,
                           absl::StrCat("cannot rewrite an ", FamilyName(*from), " address to an ",
                                        FamilyName(*to), " one (same kind on both sides)")};
    }
  }
  return std::nullopt;
}

}  // namespace seccomp_agent
