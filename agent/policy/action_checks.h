// The rules an action's arguments obey, wherever the action comes from: a
// policy file (validate.cc, at load time) or a plugin's decision
// (agent/plugin/decision.cc, per call). One place, so the two cannot drift.
// Pure: no I/O, no globals.
#ifndef SECCOMP_AGENT_POLICY_ACTION_CHECKS_H_
#define SECCOMP_AGENT_POLICY_ACTION_CHECKS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/seccompagent/v1/policy.pb.h"

namespace seccomp_agent {

inline constexpr int kMaxErrno = 4095;

// deny's errno: 1..4095.
bool ValidErrno(int64_t e);
// A spoofed return of -1..-4095 reads as an error to libc (-errno), which
// is what deny is for: both sources refuse it.
bool ReturnReadsAsErrno(int64_t value);

// Absolute, no empty / "." / ".." components, no trailing "/" (except "/"),
// no NUL.
bool IsNormalizedAbsolute(absl::string_view p);
// `path` is `root` or below it (on a "/" border).
bool InsideRoot(absl::string_view path, absl::string_view root);
// Decimal digits only, min..65535.
bool ParsePort(absl::string_view s, uint32_t min, uint32_t* port);

// The family (AF_INET, AF_INET6, AF_UNIX) of a rewrite_bind endpoint:
// "1.2.3.4:80", "[::1]:80" (port 0..65535), "/normalized/path" or
// "@abstract" (shorter than sun_path, no NUL, not empty); else
// InvalidArgument saying what is wrong.
absl::StatusOr<int> ParseBindEndpoint(absl::string_view s);
const char* FamilyName(int family);  // "AF_INET", "AF_INET6", "AF_UNIX"

// The syscalls each substitution applies to.
bool RedirectOpenAppliesTo(absl::string_view syscall);  // open, openat
bool RewriteBindAppliesTo(absl::string_view syscall);   // bind
bool ReplaceWriteAppliesTo(absl::string_view syscall);  // write

// What is wrong with an action: the field (relative to the action,
// "redirect_open.exact[\"/a\"]") and why.
struct ActionProblem {
  std::string field;
  std::string message;
};

// redirect_open's maps: at least one entry; sources absolute and
// normalized (a prefix a directory other than "/", key and target agreeing
// on a trailing "/"); every target inside one of `redirect_roots`.
std::optional<ActionProblem> CheckRedirectOpenMap(const ::seccompagent::v1::RedirectOpen& ro,
                                                  const std::vector<std::string>& redirect_roots);

// rewrite_bind's map: at least one entry, both sides endpoints of the same
// family.
std::optional<ActionProblem> CheckRewriteBindMap(const ::seccompagent::v1::RewriteBind& rb);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_POLICY_ACTION_CHECKS_H_
