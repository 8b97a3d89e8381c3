// Raw unix-socket helpers for the handoff protocol: a client that sends
// arbitrary bytes and fds (for bad-input tests against the real agent), and
// a fake listener peer that receives what runc/crun send (to prove a bundle
// makes the runtime connect and hand over its listener, without the agent).
#ifndef SECCOMP_AGENT_INTEGRATION_HARNESS_UNIX_SOCKET_H_
#define SECCOMP_AGENT_INTEGRATION_HARNESS_UNIX_SOCKET_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/common/fd.h"
#include "agent/common/unix_socket.h"

namespace seccomp_agent::integration {

// AF_UNIX SOCK_STREAM connect, as runc and crun do.
using seccomp_agent::ConnectUnix;

// One sendmsg of `bytes` with `fds` in SCM_RIGHTS (none if empty); loops
// over short writes (fds go with the first chunk). MSG_NOSIGNAL: a peer
// that hung up gives EPIPE, not a signal.
absl::Status SendWithFds(int sock, absl::string_view bytes, const std::vector<int>& fds);

// A runtime-style handoff message: the OCI ContainerProcessState as runc
// sends it (compact, ociVersion 1.0.2-dev).
std::string RuntimeMessageJson(const std::string& id, pid_t pid,
                               const std::vector<std::string>& fd_names = {"seccompFd"});

// Readlink of /proc/self/fd/N ("anon_inode:seccomp notify" for a listener).
std::string FdTarget(int fd);

// What one connection to the fake listener delivered.
struct ReceivedHandoff {
  std::string bytes;
  std::vector<UniqueFd> fds;
  pid_t peer_pid = 0;
  uid_t peer_uid = 0;
};

// Listens on `path`, accepts connections and reads each until one complete
// JSON value has arrived (no EOF needed: runtimes keep the connection).
class FakeListener {
 public:
  static absl::StatusOr<std::unique_ptr<FakeListener>> Create(const std::string& path);
  ~FakeListener();
  // Waits for the next complete handoff (in arrival order). Closing its fds
  // makes the container's trapped syscalls fail with ENOSYS.
  absl::StatusOr<ReceivedHandoff> Next(absl::Duration timeout);

 private:
  FakeListener() = default;
  void Serve();
  UnixListener listen_;
  UniqueFd stop_r_, stop_w_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<ReceivedHandoff> received_ ABSL_GUARDED_BY(mu_);
  std::vector<UniqueFd> connections_;  // kept open, like a real agent
};

}  // namespace seccomp_agent::integration

#endif  // SECCOMP_AGENT_INTEGRATION_HARNESS_UNIX_SOCKET_H_
