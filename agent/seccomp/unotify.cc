#include "agent/seccomp/unotify.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/common/status.h"

namespace seccomp_agent {
namespace {

absl::Status Ioctl(int fd, unsigned long req, void* arg, const char* what) {
  if (ioctl(fd, req, arg) != 0) return ErrnoStatus(errno, what);
  return absl::OkStatus();
}

}  // namespace

absl::Status KernelUnotify::Recv(int listener, struct seccomp_notif* out) {
  memset(out, 0, sizeof(*out));  // the kernel rejects a non-zeroed struct
  return Ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, out, "SECCOMP_IOCTL_NOTIF_RECV");
}

absl::Status KernelUnotify::Send(int listener, const struct seccomp_notif_resp& resp) {
  return Ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, const_cast<seccomp_notif_resp*>(&resp),
               "SECCOMP_IOCTL_NOTIF_SEND");
}

absl::Status KernelUnotify::IdValid(int listener, uint64_t id) {
  return Ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id, "SECCOMP_IOCTL_NOTIF_ID_VALID");
}

absl::StatusOr<int> KernelUnotify::AddFd(int listener, const struct seccomp_notif_addfd& addfd) {
  int rc = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, const_cast<seccomp_notif_addfd*>(&addfd));
  if (rc < 0) return ErrnoStatus(errno, "SECCOMP_IOCTL_NOTIF_ADDFD");
  return rc;
}

absl::Status KernelUnotify::Inject(int listener, const struct seccomp_notif_inject& inj) {
  return Ioctl(listener, SECCOMP_IOCTL_NOTIF_INJECT, const_cast<seccomp_notif_inject*>(&inj),
               "SECCOMP_IOCTL_NOTIF_INJECT");
}

absl::Status KernelUnotify::SetFlags(int listener, uint64_t flags) {
  if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) != 0) {
    return ErrnoStatus(errno, "SECCOMP_IOCTL_NOTIF_SET_FLAGS");
  }
  return absl::OkStatus();
}

UnotifyInterface& DefaultUnotify() {
  static KernelUnotify* k = new KernelUnotify();
  return *k;
}

absl::Status CheckIsListener(int fd) {
  char link[64];
  std::string proc = absl::StrCat("/proc/self/fd/", fd);
  ssize_t n = readlink(proc.c_str(), link, sizeof(link) - 1);
  if (n < 0) return ErrnoStatus(errno, absl::StrCat("readlink ", proc));
  link[n] = '\0';
  if (strcmp(link, "anon_inode:seccomp notify") != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("fd is not a seccomp listener (it is \"", link, "\")"));
  }
  // A real listener answers ID_VALID for an id that cannot exist with
  // ENOENT; anything else means the fd does not speak the protocol.
  uint64_t id = ~0ULL;
  if (ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 || errno != ENOENT) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fd does not answer SECCOMP_IOCTL_NOTIF_ID_VALID as a listener: ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace seccomp_agent
