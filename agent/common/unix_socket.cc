#include "agent/common/unix_socket.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/common/status.h"

namespace seccomp_agent {
namespace {

constexpr int kTypeMask = ~(SOCK_NONBLOCK | SOCK_CLOEXEC);

// Something accepts (or would, with a full backlog) at `addr`.
absl::StatusOr<bool> Answers(const sockaddr_un& addr, int type) {
  UniqueFd probe(socket(AF_UNIX, (type & kTypeMask) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!probe) return ErrnoStatus(errno, "socket");
  if (connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    return true;
  }
  // EAGAIN: a full backlog is still a listener; EPROTOTYPE: one of another type.
  if (errno == EAGAIN || errno == EINPROGRESS || errno == EPROTOTYPE) return true;
  if (errno == ECONNREFUSED) return false;
  return ErrnoStatus(errno, absl::StrCat("connect to existing socket ", addr.sun_path));
}

// Removes a socket file at `path` only when nothing answers on it.
absl::Status RemoveStale(const std::string& path, const sockaddr_un& addr, int type) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "lstat " + path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists and is not a socket; refusing to replace it"));
  }
  SA_ASSIGN_OR_RETURN(bool live, Answers(addr, type));
  if (live) return absl::AlreadyExistsError(absl::StrCat("something is listening on ", path));
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink " + path);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<sockaddr_un> UnixAddress(absl::string_view path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path \"", path,
                                                   "\" is empty or longer than ",
                                                   sizeof(addr.sun_path) - 1, " bytes"));
  }
  memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

absl::Status MakeParentDirs(const std::string& path) {
  for (size_t i = 1; i < path.size(); ++i) {
    if (path[i] != '/') continue;
    const std::string dir = path.substr(0, i);
    if (mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) continue;
    return ErrnoStatus(errno, "mkdir " + dir);
  }
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return absl::OkStatus();
  struct stat st;
  const std::string dir = path.substr(0, slash);
  if (stat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, "stat " + dir);
  if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(dir + " is not a directory");
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path, int type) {
  SA_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  UniqueFd s(socket(AF_UNIX, (type & kTypeMask) | SOCK_CLOEXEC, 0));
  if (!s) return ErrnoStatus(errno, "socket");
  int rc;
  do {
    rc = connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return ErrnoStatus(errno, "connect " + path);
  return s;
}

absl::StatusOr<UnixListener> UnixListener::Listen(const std::string& path,
                                                  const UnixListenOptions& options) {
  SA_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  if (options.make_parent_dirs) SA_RETURN_IF_ERROR(MakeParentDirs(path));
  SA_RETURN_IF_ERROR(RemoveStale(path, addr, options.type));
  UnixListener l;
  l.fd_.reset(socket(AF_UNIX, options.type | SOCK_CLOEXEC, 0));
  if (!l.fd_) return ErrnoStatus(errno, "socket");
  // The inode's mode before bind is what bind gives the file (& ~umask).
  if (fchmod(l.fd_.get(), options.mode) != 0) return ErrnoStatus(errno, "fchmod socket");
  if (bind(l.fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno == EADDRINUSE) {
      return absl::AlreadyExistsError(
          absl::StrCat("something is listening on ", path, " (bind: address in use)"));
    }
    return ErrnoStatus(errno, "bind " + path);
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "lstat " + path);
  l.path_ = path;
  l.dev_ = st.st_dev;
  l.ino_ = st.st_ino;
  // A umask narrower than `mode` took bits away: give them back (never more).
  if ((st.st_mode & 07777) != options.mode && chmod(path.c_str(), options.mode) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod ", path));  // ~UnixListener unlinks
  }
  if (listen(l.fd_.get(), options.backlog) != 0) return ErrnoStatus(errno, "listen " + path);
  return l;
}

UnixListener::UnixListener(UnixListener&& other) noexcept
    : fd_(std::move(other.fd_)),
      path_(std::exchange(other.path_, std::string())),
      dev_(other.dev_),
      ino_(other.ino_) {}

UnixListener& UnixListener::operator=(UnixListener&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::move(other.fd_);
    path_ = std::exchange(other.path_, std::string());
    dev_ = other.dev_;
    ino_ = other.ino_;
  }
  return *this;
}

UnixListener::~UnixListener() { Close(); }

bool UnixListener::PathStillOurs() const {
  struct stat st;
  return !path_.empty() && lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
         st.st_dev == dev_ && st.st_ino == ino_;
}

void UnixListener::Close() {
  if (PathStillOurs()) unlink(path_.c_str());
  path_.clear();
  fd_.reset();
}

ssize_t SendmsgFds(int sock, const void* data, size_t len, const int* fds, size_t nfds, int flags) {
  if (nfds > kMaxFdsPerMessage) {
    errno = EINVAL;
    return -1;
  }
  iovec iov{const_cast<void*>(data), len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  return sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
}

ssize_t RecvmsgFds(int sock, void* buf, size_t len, int* fds, size_t max_fds, size_t* nfds,
                   int* msg_flags, int flags) {
  *nfds = 0;
  *msg_flags = 0;
  if (max_fds > kMaxFdsPerMessage) max_fds = kMaxFdsPerMessage;
  iovec iov{buf, len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds);
  ssize_t n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  *msg_flags = msg.msg_flags;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    if (c->cmsg_len < CMSG_LEN(0)) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (*nfds < max_fds) {
        fds[(*nfds)++] = fd;
      } else {
        close(fd);  // CMSG_SPACE rounds up: room for one more than asked
        *msg_flags |= MSG_CTRUNC;
      }
    }
  }
  return n;
}

absl::Status SendWithFds(int sock, absl::string_view data, absl::Span<const int> fds, int flags) {
  if (fds.size() > kMaxFdsPerMessage) {
    return absl::InvalidArgumentError(
        absl::StrCat(fds.size(), " fds in one message; at most ", kMaxFdsPerMessage));
  }
  ssize_t n;
  do {
    n = SendmsgFds(sock, data.data(), data.size(), fds.data(), fds.size(), flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus(errno, "sendmsg");
  if (static_cast<size_t>(n) != data.size()) {
    return absl::DataLossError(absl::StrCat("short send: ", n, " of ", data.size(), " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ReceivedMessage> RecvWithFds(int sock, absl::Span<char> buf, size_t max_fds,
                                            int flags) {
  int fds[kMaxFdsPerMessage];
  size_t nfds = 0;
  int msg_flags = 0;
  ssize_t n;
  do {
    n = RecvmsgFds(sock, buf.data(), buf.size(), fds, max_fds, &nfds, &msg_flags, flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus(errno, "recvmsg");
  ReceivedMessage m;
  m.bytes = static_cast<size_t>(n);
  for (size_t i = 0; i < nfds; ++i) m.fds.emplace_back(fds[i]);
  m.truncated = (msg_flags & MSG_TRUNC) != 0;
  m.control_truncated = (msg_flags & MSG_CTRUNC) != 0;
  return m;
}

}  // namespace seccomp_agent
