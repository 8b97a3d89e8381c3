#include "agent/injector/safe_open.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "agent/common/status.h"

namespace seccomp_agent::injector {
namespace {

// openat2 refuses flags it does not know (openat ignores them): keep the
// ones open(2) defines.
constexpr int kOpenFlags = O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND |
                           O_NONBLOCK | O_DSYNC | FASYNC | O_DIRECT | O_LARGEFILE | O_DIRECTORY |
                           O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_SYNC | O_PATH | O_TMPFILE;

int g_fd_dir = -1;  // the agent's /proc/self/fd, opened once, never closed

int Openat2(int dirfd, const char* path, int flags, mode_t mode, uint64_t resolve) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
  const bool with_mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
  how.mode = with_mode ? (mode & 07777) : 0;
  how.resolve = resolve;
  for (int tries = 0;; ++tries) {
    int fd = static_cast<int>(syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
    // EAGAIN: a rename raced ".." (openat2's own safety check); retry a few
    // times, then report it.
    if (fd >= 0 || errno != EAGAIN || tries >= 8) return fd;
  }
}

SafeOpenResult Error(int err, std::string why = "") {
  SafeOpenResult r;
  r.error = err;
  r.why = std::move(why);
  return r;
}

const char* TypeName(mode_t m) {
  if (S_ISCHR(m)) return "char device";
  if (S_ISBLK(m)) return "block device";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISSOCK(m)) return "socket";
  return "special file";
}

// Step 2: what the agent refuses to open for a task (error, why), or 0.
SafeOpenResult Check(int fd, bool opening) {
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) return Error(errno);
  if (sfs.f_type == PROC_SUPER_MAGIC) return Error(EACCES, "procfs");
  if (!opening) return {};
  struct stat st;
  if (fstat(fd, &st) != 0) return Error(errno);
  if (S_ISLNK(st.st_mode)) return Error(ELOOP);  // O_NOFOLLOW on a symlink
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return Error(EACCES, TypeName(st.st_mode));
  return {};
}

// Clears the O_NONBLOCK an fd was opened with (`opened`: its open flags).
// F_SETFL looks only at O_APPEND, O_NONBLOCK, O_DIRECT, O_NOATIME and
// FASYNC, all known from the open flags, so no F_GETFL first.
bool ClearNonblock(int fd, int opened) { return fcntl(fd, F_SETFL, opened & ~O_NONBLOCK) == 0; }

// Step 3: reopens the checked O_PATH fd with the task's flags.
SafeOpenResult Reopen(UniqueFd path_fd, int flags) {
  char name[16];
  snprintf(name, sizeof(name), "%d", path_fd.get());
  const int reopen = (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  SafeOpenResult r;
  r.fd.reset(openat(g_fd_dir, name, reopen));
  if (!r.fd) return Error(errno);
  if (!(flags & O_NONBLOCK) && !ClearNonblock(r.fd.get(), reopen)) return Error(errno);
  return r;
}

// Creates a new regular file (`flags` has O_CREAT|O_EXCL, or O_TMPFILE):
// nothing existing is opened.
SafeOpenResult Create(int dirfd, const char* path, int flags, mode_t mode, uint64_t resolve) {
  SafeOpenResult r;
  r.fd.reset(Openat2(dirfd, path, flags | O_NONBLOCK | O_NOCTTY, mode, resolve));
  if (!r.fd) return Error(errno);
  if (!(flags & O_NONBLOCK) && !ClearNonblock(r.fd.get(), flags | O_NONBLOCK)) return Error(errno);
  return r;
}

}  // namespace

absl::Status PrepareSafeOpen() {
  static const int fd = [] { return open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC); }();
  if (fd < 0) return ErrnoStatus(errno ? errno : EBADF, "open /proc/self/fd");
  g_fd_dir = fd;
  return absl::OkStatus();
}

SafeOpenResult SafeOpen(const SafeOpenRequest& req) {
  if (g_fd_dir < 0) return Error(EBADF, "PrepareSafeOpen not called");
  const int flags = req.flags & kOpenFlags;
  int dirfd = req.dirfd;
  const char* path = req.path;
  uint64_t resolve = RESOLVE_NO_MAGICLINKS;
  if (req.root_fd >= 0) {  // see SafeOpenRequest::root_fd
    const bool creates = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
    if (path[0] != '/' || creates) return Error(EINVAL, "root_fd: absolute, no create");
    dirfd = req.root_fd;
    resolve |= RESOLVE_IN_ROOT;
  }
  UniqueFd beneath;
  std::string rel;
  if (!req.beneath.empty()) {
    const std::string& b = req.beneath;
    const std::string p = path;
    if (p.compare(0, b.size(), b) != 0 ||
        (p.size() > b.size() && p[b.size()] != '/' && b.back() != '/')) {
      return Error(EACCES, "outside redirect root");
    }
    // From the thread's root, or IN_ROOT from the task's root.
    beneath.reset(Openat2(req.root_fd >= 0 ? req.root_fd : AT_FDCWD, b.c_str(),
                          O_PATH | O_DIRECTORY, 0, resolve));
    if (!beneath) return Error(errno);
    rel = p.substr(b.size());
    while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
    if (rel.empty()) rel = ".";
    dirfd = beneath.get();
    path = rel.c_str();
    // Beneath the directory just opened (openat2 refuses IN_ROOT with it).
    resolve = RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH;
  }
  if (flags & O_PATH) {
    SafeOpenResult r;
    r.fd.reset(Openat2(dirfd, path, flags & (O_PATH | O_NOFOLLOW | O_DIRECTORY), 0, resolve));
    if (!r.fd) return Error(errno);
    SafeOpenResult c = Check(r.fd.get(), /*opening=*/false);
    return c.error ? std::move(c) : std::move(r);
  }
  if ((flags & O_TMPFILE) == O_TMPFILE) {
    UniqueFd dir(Openat2(dirfd, path, O_PATH | O_DIRECTORY, 0, resolve));
    if (!dir) return Error(errno);
    SafeOpenResult c = Check(dir.get(), /*opening=*/true);
    if (c.error) return c;
    return Create(dir.get(), ".", flags, req.mode, 0);
  }
  const bool excl = (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL);
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (!excl) {
      UniqueFd p(Openat2(dirfd, path, O_PATH | (flags & (O_NOFOLLOW | O_DIRECTORY)), 0, resolve));
      if (p) {
        SafeOpenResult c = Check(p.get(), /*opening=*/true);
        if (c.error) return c;
        return Reopen(std::move(p), flags);
      }
      if (errno != ENOENT || !(flags & O_CREAT)) return Error(errno);
    }
    SafeOpenResult made = Create(dirfd, path, flags | O_EXCL, req.mode, resolve);
    // EEXIST without O_EXCL: created meanwhile (or a dangling symlink):
    // look it up again.
    if (made.error != EEXIST || excl) return made;
  }
  return Error(EEXIST);
}

}  // namespace seccomp_agent::injector
