#include "agent/seccomp/filter_util.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/common/fd.h"
#include "agent/common/status.h"
#include "agent/common/unix_socket.h"

namespace seccomp_agent {

absl::StatusOr<std::vector<sock_filter>> ExportBpf(scmp_filter_ctx ctx) {
  UniqueFd mem(memfd_create("bpf", MFD_CLOEXEC));
  int rc = mem ? seccomp_export_bpf(ctx, mem.get()) : -errno;
  seccomp_release(ctx);
  if (rc != 0) return ErrnoStatus(-rc, "seccomp_export_bpf");
  off_t size = lseek(mem.get(), 0, SEEK_END);
  std::vector<sock_filter> prog(size / sizeof(sock_filter));
  if (pread(mem.get(), prog.data(), size, 0) != size) return ErrnoStatus(errno, "pread bpf");
  return prog;
}

bool SendOneFd(int sock, int fd) {
  const char byte = 'L';
  return SendmsgFds(sock, &byte, 1, &fd, 1, 0) == 1;
}

int RecvOneFd(int sock) {
  char byte;
  int fd = -1;
  size_t nfds = 0;
  int flags = 0;
  if (RecvmsgFds(sock, &byte, 1, &fd, 1, &nfds, &flags, 0) != 1 || nfds != 1) return -1;
  if (flags & MSG_CTRUNC) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace seccomp_agent
