// absl::Status helpers for system calls: the errno is always in the message
// and in the canonical code, so callers can branch on it.
#ifndef SECCOMP_AGENT_COMMON_STATUS_H_
#define SECCOMP_AGENT_COMMON_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace seccomp_agent {

// Status for a failed call: "<what>: <strerror> (errno N)". The code follows
// absl::ErrnoToStatusCode, and the errno is kept as a payload so ErrnoOf()
// can return it exactly.
absl::Status ErrnoStatus(int err, absl::string_view what);

// The errno recorded by ErrnoStatus, or 0 when `s` carries none.
int ErrnoOf(const absl::Status& s);

// "EPERM" for 1, etc.; a number as text for unknown values.
std::string ErrnoName(int err);

// Parses "EPERM" or "1"; returns -1 when unknown or out of range 1..4095.
int ErrnoFromString(absl::string_view s);

}  // namespace seccomp_agent

#define SA_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status _sa_status = (expr);      \
    if (!_sa_status.ok()) return _sa_status; \
  } while (0)

#define SA_CONCAT_INNER(a, b) a##b
#define SA_CONCAT(a, b) SA_CONCAT_INNER(a, b)
#define SA_ASSIGN_OR_RETURN(lhs, expr)                                                  \
  auto SA_CONCAT(_sa_or_, __LINE__) = (expr);                                           \
  if (!SA_CONCAT(_sa_or_, __LINE__).ok()) return SA_CONCAT(_sa_or_, __LINE__).status(); \
  lhs = std::move(*SA_CONCAT(_sa_or_, __LINE__))

#endif  // SECCOMP_AGENT_COMMON_STATUS_H_
