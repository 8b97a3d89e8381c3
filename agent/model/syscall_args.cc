#include "agent/model/syscall_args.h"

#include "absl/container/flat_hash_map.h"
#include "agent/model/event.h"

namespace seccomp_agent {
namespace {

// Builders keep the table below readable: one line per syscall.
constexpr SyscallArgLayout Path(const char* name, int8_t path, int8_t dirfd = -1) {
  SyscallArgLayout l{name};
  l.path = path;
  l.dirfd = dirfd;
  return l;
}

constexpr SyscallArgLayout TwoPaths(const char* name, int8_t path, int8_t dirfd, int8_t path2,
                                    int8_t dirfd2) {
  SyscallArgLayout l{name};
  l.path = path;
  l.dirfd = dirfd;
  l.path2 = path2;
  l.dirfd2 = dirfd2;
  return l;
}

constexpr SyscallArgLayout Sock(const char* name) {
  SyscallArgLayout l{name};
  l.fd = 0;
  l.sockaddr = 1;
  l.sockaddr_len = 2;
  return l;
}

constexpr SyscallArgLayout Write(const char* name) {
  SyscallArgLayout l{name};
  l.fd = 0;
  l.buf = 1;
  l.count = 2;
  return l;
}

// Keep sorted by family. A syscall added here becomes matchable by path /
// sockaddr / fd conditions and decodable by the engine.
constexpr SyscallArgLayout kLayouts[] = {
    Path("open", 0),
    Path("creat", 0),
    Path("openat", 1, 0),
    Path("openat2", 1, 0),
    Path("mkdir", 0),
    Path("mkdirat", 1, 0),
    Path("mknod", 0),
    Path("mknodat", 1, 0),
    Path("mount", 1),  // the target; source, fstype and data are read by the mount action
    Path("rmdir", 0),
    Path("unlink", 0),
    Path("unlinkat", 1, 0),
    Path("chmod", 0),
    Path("fchmodat", 1, 0),
    Path("chown", 0),
    Path("lchown", 0),
    Path("fchownat", 1, 0),
    Path("truncate", 0),
    // The file; the name, value, size and flags are read by the setxattr action
    // (fsetxattr names an fd: nothing to decode).
    Path("setxattr", 0),
    Path("lsetxattr", 0),
    Path("execve", 0),
    Path("execveat", 1, 0),
    // rename(old, new), renameat(olddirfd, old, newdirfd, new[, flags]).
    TwoPaths("rename", 0, -1, 1, -1),
    TwoPaths("renameat", 1, 0, 3, 2),
    TwoPaths("renameat2", 1, 0, 3, 2),
    // link(old, new), linkat(olddirfd, old, newdirfd, new, flags).
    TwoPaths("link", 0, -1, 1, -1),
    TwoPaths("linkat", 1, 0, 3, 2),
    // symlink(target, linkpath), symlinkat(target, newdirfd, linkpath). The
    // target is stored text, not resolved by this call; it is still `path`.
    TwoPaths("symlink", 0, -1, 1, -1),
    TwoPaths("symlinkat", 0, -1, 2, 1),
    Sock("bind"),
    Sock("connect"),
    Write("write"),
    Write("pwrite64"),
};

}  // namespace

uint32_t SyscallArgLayout::Provides() const {
  uint32_t bits = kNeedNothing;
  if (path >= 0 || path2 >= 0) bits |= kNeedPath;
  if (sockaddr >= 0) bits |= kNeedSockaddr;
  if (buf >= 0) bits |= kNeedWriteBytes;
  return bits;
}

const SyscallArgLayout* ArgLayoutFor(absl::string_view syscall) {
  // Built once, never destroyed (no exit-time destructor races).
  static const auto* const kIndex = [] {
    auto* m = new absl::flat_hash_map<absl::string_view, const SyscallArgLayout*>();
    for (const SyscallArgLayout& l : kLayouts) m->emplace(l.syscall, &l);
    return m;
  }();
  auto it = kIndex->find(syscall);
  return it == kIndex->end() ? nullptr : it->second;
}

absl::Span<const SyscallArgLayout> AllArgLayouts() { return absl::MakeConstSpan(kLayouts); }

}  // namespace seccomp_agent
