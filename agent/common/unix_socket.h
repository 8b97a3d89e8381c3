// AF_UNIX sockets bound at a path, and messages that carry fds. The one
// place for the rules every socket of the agent follows:
//  - listen: a socket file something still answers on is never replaced
//    (AlreadyExists); a stale one (ECONNREFUSED) is; anything else at the
//    path is refused.
//  - mode: set on the socket's inode before bind (fchmod on the socket fd;
//    Linux's unix_bind creates the file with that mode & ~umask), so the
//    file never exists with more than `mode`, and the process-wide umask is
//    never touched (the agent is multithreaded).
//  - exit: the file is unlinked only while it is still our inode (a newer
//    server may have replaced it).
//  - messages: SCM_RIGHTS in one sendmsg/recvmsg, received fds are
//    MSG_CMSG_CLOEXEC and owned before anything else is looked at, and both
//    kinds of truncation are reported.
#ifndef SECCOMP_AGENT_COMMON_UNIX_SOCKET_H_
#define SECCOMP_AGENT_COMMON_UNIX_SOCKET_H_

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "agent/common/fd.h"

namespace seccomp_agent {

// Most fds one message may carry (SendWithFds, RecvWithFds).
inline constexpr size_t kMaxFdsPerMessage = 16;

// The address of `path`: InvalidArgument when empty or too long.
absl::StatusOr<sockaddr_un> UnixAddress(absl::string_view path);

// mkdir -p of `path`'s parent directory (0755 for each one created).
absl::Status MakeParentDirs(const std::string& path);

// A blocking CLOEXEC socket of `type` (SOCK_STREAM or SOCK_SEQPACKET)
// connected to `path`; the error keeps connect's errno.
absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path, int type = SOCK_STREAM);

struct UnixListenOptions {
  int type = SOCK_STREAM;  // or SOCK_SEQPACKET; SOCK_NONBLOCK may be or-ed in
  mode_t mode = 0600;      // permission bits of the socket file
  int backlog = SOMAXCONN;
  bool make_parent_dirs = true;  // mkdir -p the parent (0755)
};

// A listening socket bound at a path (see the rules above).
class UnixListener {
 public:
  // AlreadyExists when something answers at `path`; FailedPrecondition when
  // `path` is not a socket; a stale socket file is replaced.
  static absl::StatusOr<UnixListener> Listen(const std::string& path,
                                             const UnixListenOptions& options = {});

  UnixListener() = default;
  UnixListener(UnixListener&& other) noexcept;
  UnixListener& operator=(UnixListener&& other) noexcept;
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;
  // Closes the socket; unlinks the path while it is still our inode.
  ~UnixListener();

  int fd() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  const std::string& path() const { return path_; }
  // The file at path() is still the one this listener created.
  bool PathStillOurs() const;
  // Closes now (as the destructor does).
  void Close();

 private:
  UniqueFd fd_;
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// Low level, raw syscalls only and no allocation: safe in a child after
// fork. One sendmsg of `len` bytes with `nfds` (<= kMaxFdsPerMessage) fds
// in one SCM_RIGHTS message, MSG_NOSIGNAL added. Returns what sendmsg does.
ssize_t SendmsgFds(int sock, const void* data, size_t len, const int* fds, size_t nfds, int flags);
// One recvmsg, MSG_CMSG_CLOEXEC added, room for `max_fds` (<=
// kMaxFdsPerMessage) fds. Every fd received goes into fds[0..*nfds) (the
// caller owns them); one past `max_fds` is closed and reported as
// MSG_CTRUNC in *msg_flags (with MSG_TRUNC as the kernel set it). Returns
// what recvmsg does.
ssize_t RecvmsgFds(int sock, void* buf, size_t len, int* fds, size_t max_fds, size_t* nfds,
                   int* msg_flags, int flags);

// SendmsgFds, EINTR retried; a short send is DataLoss.
absl::Status SendWithFds(int sock, absl::string_view data, absl::Span<const int> fds = {},
                         int flags = 0);

struct ReceivedMessage {
  size_t bytes = 0;                // 0 on a stream: EOF
  std::vector<UniqueFd> fds;       // every fd that came, owned
  bool truncated = false;          // MSG_TRUNC: the datagram was longer than the buffer
  bool control_truncated = false;  // MSG_CTRUNC: more fds than max_fds, or other cmsgs
};
// RecvmsgFds into `buf`, EINTR retried. Errors keep their errno (ErrnoOf),
// so a non-blocking caller can tell EAGAIN.
absl::StatusOr<ReceivedMessage> RecvWithFds(int sock, absl::Span<char> buf, size_t max_fds,
                                            int flags = 0);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_COMMON_UNIX_SOCKET_H_
