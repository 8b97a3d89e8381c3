#include "agent/seccomp/task_memory.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "agent/common/status.h"

namespace seccomp_agent {
namespace {

constexpr uint64_t kPage = 4096;

// Reads up to `len` bytes; returns how many were read (stops at the first
// unreadable page).
absl::StatusOr<size_t> ReadSome(pid_t pid, uint64_t addr, char* out, size_t len) {
  iovec local{out, len};
  iovec remote{reinterpret_cast<void*>(addr), len};
  ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
  if (n < 0) {
    return ErrnoStatus(errno, absl::StrFormat("process_vm_readv pid %d addr 0x%x", pid, addr));
  }
  return static_cast<size_t>(n);
}

}  // namespace

absl::StatusOr<std::string> ReadTaskString(pid_t pid, uint64_t addr, size_t max_len) {
  if (addr == 0) return ErrnoStatus(EFAULT, "null string pointer");
  std::string out;
  char buf[kPage];
  while (out.size() <= max_len) {
    size_t chunk = kPage - (addr % kPage);  // never cross a page in one read
    SA_ASSIGN_OR_RETURN(size_t n, ReadSome(pid, addr, buf, chunk));
    if (n == 0) return ErrnoStatus(EFAULT, "string runs into unreadable memory");
    const char* nul = static_cast<const char*>(memchr(buf, '\0', n));
    if (nul != nullptr) {
      out.append(buf, nul - buf);
      if (out.size() > max_len) break;
      return out;
    }
    out.append(buf, n);
    addr += n;
  }
  return ErrnoStatus(ENAMETOOLONG, absl::StrFormat("string longer than %d bytes", max_len));
}

absl::StatusOr<std::vector<uint8_t>> ReadTaskBytes(pid_t pid, uint64_t addr, size_t len) {
  std::vector<uint8_t> out(len);
  size_t done = 0;
  while (done < len) {
    SA_ASSIGN_OR_RETURN(size_t n, ReadSome(pid, addr + done,
                                           reinterpret_cast<char*>(out.data()) + done, len - done));
    if (n == 0) return ErrnoStatus(EFAULT, "buffer runs into unreadable memory");
    done += n;
  }
  return out;
}

}  // namespace seccomp_agent
