#include "agent/common/status.h"

#include <string.h>

#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace seccomp_agent {
namespace {

constexpr absl::string_view kErrnoPayload = "seccomp-agent/errno";

struct ErrnoEntry {
  int value;
  const char* name;
};

#define E(x) \
  { x, #x }
constexpr ErrnoEntry kErrnos[] = {
    E(EPERM),        E(ENOENT),       E(ESRCH),        E(EINTR),         E(EIO),
    E(ENXIO),        E(E2BIG),        E(ENOEXEC),      E(EBADF),         E(ECHILD),
    E(EAGAIN),       E(ENOMEM),       E(EACCES),       E(EFAULT),        E(EBUSY),
    E(EEXIST),       E(EXDEV),        E(ENODEV),       E(ENOTDIR),       E(EISDIR),
    E(EINVAL),       E(ENFILE),       E(EMFILE),       E(ENOTTY),        E(ETXTBSY),
    E(EFBIG),        E(ENOSPC),       E(ESPIPE),       E(EROFS),         E(EMLINK),
    E(EPIPE),        E(EDOM),         E(ERANGE),       E(EDEADLK),       E(ENAMETOOLONG),
    E(ENOLCK),       E(ENOSYS),       E(ENOTEMPTY),    E(ELOOP),         E(ENOMSG),
    E(ENODATA),      E(ETIME),        E(EOVERFLOW),    E(EILSEQ),        E(ENOTSOCK),
    E(EDESTADDRREQ), E(EMSGSIZE),     E(EPROTOTYPE),   E(ENOPROTOOPT),   E(EPROTONOSUPPORT),
    E(EOPNOTSUPP),   E(EAFNOSUPPORT), E(EADDRINUSE),   E(EADDRNOTAVAIL), E(ENETDOWN),
    E(ENETUNREACH),  E(ECONNABORTED), E(ECONNRESET),   E(ENOBUFS),       E(EISCONN),
    E(ENOTCONN),     E(ETIMEDOUT),    E(ECONNREFUSED), E(EHOSTUNREACH),  E(EALREADY),
    E(EINPROGRESS),  E(ESTALE),       E(EDQUOT),       E(ECANCELED),     E(EOWNERDEAD),
};
#undef E

}  // namespace

absl::Status ErrnoStatus(int err, absl::string_view what) {
  absl::Status s(absl::ErrnoToStatusCode(err),
                 absl::StrFormat("%s: %s (%s)", what, strerror(err), ErrnoName(err)));
  s.SetPayload(kErrnoPayload, absl::Cord(absl::StrCat(err)));
  return s;
}

int ErrnoOf(const absl::Status& s) {
  auto p = s.GetPayload(kErrnoPayload);
  int v = 0;
  if (!p.has_value() || !absl::SimpleAtoi(std::string(*p), &v)) return 0;
  return v;
}

std::string ErrnoName(int err) {
  for (const auto& e : kErrnos) {
    if (e.value == err) return e.name;
  }
  return absl::StrCat(err);
}

int ErrnoFromString(absl::string_view s) {
  int v = 0;
  if (absl::SimpleAtoi(s, &v)) return (v >= 1 && v <= 4095) ? v : -1;
  for (const auto& e : kErrnos) {
    if (s == e.name) return e.value;
  }
  // Aliases that share a value with a listed name.
  if (s == "EWOULDBLOCK") return EWOULDBLOCK;
  if (s == "ENOTSUP") return ENOTSUP;
  return -1;
}

}  // namespace seccomp_agent
