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
#include "agent/policy/syscall_args.h"
#include "agent/seccomp/syscall_names.h"
#include "agent/seccomp/task_memory.h"

namespace seccomp_agent {
namespace {

// A compat (32-bit) task's pointers and ints live in the low 32 bits.
uint64_t Arg(const SyscallEvent& ev, int i) {
  return IsNativeArch(ev.arch) ? ev.args[i] : (ev.args[i] & 0xffffffffULL);
}

// fds are C ints: Go passes AT_FDCWD as 0xffffffffffffff9c, C as 0xffffff9c.
int64_t FdArg(const SyscallEvent& ev, int i) { return static_cast<int32_t>(ev.args[i]); }

// Lexically joins and normalizes ("." and ".." and "//"); ".." at the root
// stays at the root, as the kernel does.
std::string JoinNormalize(const std::string& base, const std::string& rel) {
  std::vector<std::string> parts;
  auto push = [&parts](absl::string_view p) {
    for (absl::string_view c : absl::StrSplit(p, '/', absl::SkipEmpty())) {
      if (c == ".") continue;
      if (c == "..") {
        if (!parts.empty()) parts.pop_back();
        continue;
      }
      parts.emplace_back(c);
    }
  };
  push(base);
  push(rel);
  std::string out;
  for (const auto& p : parts) absl::StrAppend(&out, "/", p);
  return out.empty() ? "/" : out;
}

// The task's view of its cwd (dirfd == AT_FDCWD) or of an open dirfd.
std::optional<std::string> TaskDir(pid_t pid, int64_t dirfd) {
  char link[64];
  if (dirfd == AT_FDCWD) {
    snprintf(link, sizeof(link), "/proc/%d/cwd", pid);
  } else {
    snprintf(link, sizeof(link), "/proc/%d/fd/%d", pid, static_cast<int>(dirfd));
  }
  char buf[PATH_MAX];
  ssize_t n = readlink(link, buf, sizeof(buf) - 1);
  if (n <= 0 || buf[0] != '/') return std::nullopt;  // gone, or not a path (a socket, ...)
  return std::string(buf, n);
}

// Resolves a relative path against the task's cwd/dirfd. The links under
// /proc/PID read relative to the task's own root (checked: a runc
// container's cwd reads "/forbidden/sub"), so the result is in the task's
// view, like the policy's globs.
std::optional<std::string> Absolute(const SyscallEvent& ev, const std::string& path,
                                    std::optional<int64_t> dirfd) {
  if (path.empty() || path[0] == '/') return std::nullopt;
  std::optional<std::string> dir = TaskDir(ev.pid, dirfd.value_or(AT_FDCWD));
  if (!dir) return std::nullopt;
  return JoinNormalize(*dir, path);
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
      ev.abs_path = Absolute(ev, *ev.path, d1);
      if (!ev.abs_path && !ev.path->empty() && (*ev.path)[0] != '/') {
        ev.decode_error = "relative path could not be resolved";
      }
    } else {
      NoteError(ev, "path", p.status());
    }
    if (l->path2 >= 0) {
      auto p2 = ReadTaskString(ev.pid, Arg(ev, l->path2), PATH_MAX);
      if (p2.ok()) {
        ev.path2 = std::move(*p2);
        std::optional<int64_t> d2;
        if (l->dirfd2 >= 0) d2 = FdArg(ev, l->dirfd2);
        ev.abs_path2 = Absolute(ev, *ev.path2, d2);
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
