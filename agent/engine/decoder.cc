#include "agent/engine/decoder.h"

#include <arpa/inet.h>
#include <linux/limits.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/status.h"
#include "agent/model/syscall_args.h"
#include "agent/seccomp/syscall_names.h"
#include "agent/seccomp/task_memory.h"
#include "agent/seccomp/task_path.h"

namespace seccomp_agent {
namespace {

// A compat (32-bit) task's pointers and ints live in the low 32 bits.
uint64_t Arg(const SyscallEvent& ev, int i) {
  return IsNativeArch(ev.arch) ? ev.args[i] : (ev.args[i] & 0xffffffffULL);
}

// fds are C ints: Go passes AT_FDCWD as 0xffffffffffffff9c, C as 0xffffff9c.
int64_t FdArg(const SyscallEvent& ev, int i) { return static_cast<int32_t>(ev.args[i]); }

// Whether the kernel follows a symlink in the LAST component of path
// number `which` (1 or 2) of this call. Paths that name the link itself
// (mkdir, unlink, rename, O_CREAT|O_EXCL, O_NOFOLLOW, ...) do not.
bool FollowsLast(const SyscallEvent& ev, int which) {
  const std::string& s = ev.syscall;
  auto flag_at = [&ev](int i, uint64_t bit) { return (Arg(ev, i) & bit) != 0; };
  auto open_follows = [&ev](int i) {
    const uint64_t f = Arg(ev, i);
    return !(f & O_NOFOLLOW) && (f & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL);
  };
  if (s == "open") return open_follows(1);
  if (s == "openat") return open_follows(2);
  if (s == "creat" || s == "openat2" || s == "chmod" || s == "chown" || s == "truncate" ||
      s == "execve" || s == "fchmodat" || s == "setxattr" || s == "mount") {
    return true;
  }
  if (s == "fchownat") return !flag_at(4, AT_SYMLINK_NOFOLLOW);
  if (s == "execveat") return !flag_at(4, AT_SYMLINK_NOFOLLOW);
  if (s == "linkat" && which == 1) return flag_at(4, AT_SYMLINK_FOLLOW);
  return false;  // mkdir*, mknod*, rmdir, unlink*, rename*, link, symlink*, lchown, lsetxattr
}

// The path as the kernel resolves it for the task (task_path.h), or
// nullopt when it cannot be resolved (the engine then fails closed when a
// rule needs it).
std::optional<std::string> Resolve(SyscallEvent& ev, const std::string& path,
                                   std::optional<int64_t> dirfd, int which) {
  absl::StatusOr<std::string> r =
      ResolveTaskPath(ev.pid, dirfd.value_or(AT_FDCWD), path, FollowsLast(ev, which));
  if (r.ok()) return *std::move(r);
  if (!ev.decode_error.empty()) ev.decode_error += "; ";
  absl::StrAppend(&ev.decode_error, "path", which == 1 ? "" : "2",
                  " not resolved in the task's root: ", r.status().message());
  return std::nullopt;
}

void NoteError(SyscallEvent& ev, const char* what, const absl::Status& s) {
  if (!ev.decode_error.empty()) ev.decode_error += "; ";
  absl::StrAppend(&ev.decode_error, what, ": ", s.message());
}

}  // namespace

Sockaddr ParseSockaddr(const uint8_t* data, size_t len) {
  Sockaddr sa;
  sa.raw.assign(data, data + len);
  if (len < sizeof(sa_family_t)) return sa;
  sa_family_t family;
  memcpy(&family, data, sizeof(family));
  sa.family = family;
  char text[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in in;
    memcpy(&in, data, sizeof(in));
    inet_ntop(AF_INET, &in.sin_addr, text, sizeof(text));
    sa.address = text;
    sa.port = ntohs(in.sin_port);
  } else if (family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6;
    memcpy(&in6, data, sizeof(in6));
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text));
    sa.address = text;
    sa.port = ntohs(in6.sin6_port);
  } else if (family == AF_UNIX) {
    const char* p = reinterpret_cast<const char*>(data) + offsetof(sockaddr_un, sun_path);
    size_t n = len - offsetof(sockaddr_un, sun_path);
    if (len <= offsetof(sockaddr_un, sun_path)) {
      sa.address = "";  // unnamed (autobind)
    } else if (p[0] == '\0') {
      sa.address = "@" + std::string(p + 1, n - 1);  // abstract: length-delimited
    } else {
      sa.address = std::string(p, strnlen(p, n));
    }
  }
  return sa;
}

SyscallEvent EventOf(const ContainerInfo& info, const seccomp_notif& n) {
  SyscallEvent ev;
  ev.container = &info;
  ev.id = n.id;
  ev.pid = static_cast<pid_t>(n.pid);
  ev.arch = n.data.arch;
  ev.nr = n.data.nr;
  ev.syscall = SyscallName(n.data.arch, n.data.nr);
  ev.instruction_pointer = n.data.instruction_pointer;
  for (int i = 0; i < 6; ++i) ev.args[i] = n.data.args[i];
  return ev;
}

bool DecodeEvent(SyscallEvent& ev, uint32_t needs, size_t max_write_capture) {
  const SyscallArgLayout* l = ArgLayoutFor(ev.syscall);
  if (l == nullptr) return false;
  bool read = false;
  if (l->dirfd >= 0) ev.dirfd = FdArg(ev, l->dirfd);
  if (l->fd >= 0) ev.fd = FdArg(ev, l->fd);
  if (l->count >= 0) ev.write_count = Arg(ev, l->count);

  if ((needs & kNeedPath) && l->path >= 0) {
    read = true;
    auto p = ReadTaskString(ev.pid, Arg(ev, l->path), PATH_MAX);
    if (p.ok()) {
      ev.path = std::move(*p);
      std::optional<int64_t> d1;
      if (l->dirfd >= 0) d1 = FdArg(ev, l->dirfd);
      // symlink(2)'s first path is the link's text, never resolved.
      const bool text = ev.syscall == "symlink" || ev.syscall == "symlinkat";
      if (!text) ev.abs_path = Resolve(ev, *ev.path, d1, 1);
    } else {
      NoteError(ev, "path", p.status());
      ev.path_errno = ErrnoOf(p.status());
    }
    if (l->path2 >= 0) {
      auto p2 = ReadTaskString(ev.pid, Arg(ev, l->path2), PATH_MAX);
      if (p2.ok()) {
        ev.path2 = std::move(*p2);
        std::optional<int64_t> d2;
        if (l->dirfd2 >= 0) d2 = FdArg(ev, l->dirfd2);
        ev.abs_path2 = Resolve(ev, *ev.path2, d2, 2);
      } else {
        NoteError(ev, "path2", p2.status());
      }
    }
  }
  if ((needs & kNeedSockaddr) && l->sockaddr >= 0) {
    read = true;
    size_t len = std::min<uint64_t>(Arg(ev, l->sockaddr_len), sizeof(sockaddr_storage));
    auto b = ReadTaskBytes(ev.pid, Arg(ev, l->sockaddr), len);
    if (b.ok()) {
      ev.sockaddr = ParseSockaddr(b->data(), b->size());
    } else {
      NoteError(ev, "sockaddr", b.status());
    }
  }
  if ((needs & kNeedWriteBytes) && l->buf >= 0) {
    read = true;
    size_t len = std::min<uint64_t>(Arg(ev, l->count), max_write_capture);
    auto b = ReadTaskBytes(ev.pid, Arg(ev, l->buf), len);
    if (b.ok()) {
      ev.write_bytes = std::string(b->begin(), b->end());
    } else {
      NoteError(ev, "buf", b.status());
    }
  }
  return read;
}

}  // namespace seccomp_agent
