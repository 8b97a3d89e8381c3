// Where the decodable arguments of a syscall sit: which argument is a path,
// a sockaddr, a write buffer. The policy's Needs() and the engine's decoder
// both read this one table, so what the policy asks for and what the engine
// reads cannot drift apart.
#ifndef SECCOMP_AGENT_MODEL_SYSCALL_ARGS_H_
#define SECCOMP_AGENT_MODEL_SYSCALL_ARGS_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace seccomp_agent {

// Argument indexes (0..5) for one syscall; -1 when the syscall has no such
// argument. Indexes are those of the native (x86_64/aarch64) ABI.
struct SyscallArgLayout {
  const char* syscall;       // libseccomp name, e.g. "mkdirat"
  int8_t path = -1;          // first path (NUL-terminated string in the task)
  int8_t dirfd = -1;         // dirfd that `path` is relative to (*at family)
  int8_t path2 = -1;         // second path (rename/link/symlink families)
  int8_t dirfd2 = -1;        // dirfd that `path2` is relative to
  int8_t sockaddr = -1;      // struct sockaddr pointer (bind, connect)
  int8_t sockaddr_len = -1;  // its socklen_t length argument
  int8_t fd = -1;            // the fd operated on (write, bind, ...)
  int8_t buf = -1;           // write buffer pointer
  int8_t count = -1;         // write byte count

  // DecodeNeeds bits this syscall can supply (kNeedPath when path >= 0, ...).
  uint32_t Provides() const;
};

// The layout for `syscall`, or nullptr when no argument of it is decodable
// (getpid, ...). Thread-safe, no allocation; the pointer lives forever.
const SyscallArgLayout* ArgLayoutFor(absl::string_view syscall);

// Every entry of the table, in a fixed order (for tests and for Needs()).
absl::Span<const SyscallArgLayout> AllArgLayouts();

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_MODEL_SYSCALL_ARGS_H_
