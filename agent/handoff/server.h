// The runtime handoff: a unix SOCK_STREAM listener at
// `linux.seccomp.listenerPath` where runc and crun deliver each container's
// seccomp listener fd (one JSON ContainerProcessState + one fd in
// SCM_RIGHTS; see message.h for the message itself).
//
// One thread runs an epoll loop over the listening socket and every pending
// connection, all non-blocking, so no connection can stall another: an idle
// one (crun connects at create and sends only at start, seconds later), a
// slow sender, one closed mid-message, or a flood of them. A message is
// complete when its bytes form a JSON value (EOF carries no meaning: the
// runtime may hold the connection open). After a complete message the
// connection is closed either way; runtimes never wait for a reply.
//
// Every failure logs exactly one warning
//   handoff rejected: peer pid <pid>: <reason>
// closes every fd received on that connection (they are owned by UniqueFd
// from the moment recvmsg returns, MSG_CMSG_CLOEXEC) and the connection, and
// touches nothing else. Success calls `on_handoff`; logging
// "container <id> registered: ..." is the caller's job.
#ifndef SECCOMP_AGENT_HANDOFF_SERVER_H_
#define SECCOMP_AGENT_HANDOFF_SERVER_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/fd.h"
#include "agent/common/unix_socket.h"
#include "agent/handoff/message.h"
#include "agent/model/event.h"

namespace seccomp_agent {

// One accepted container: what the runtime said and the listener it sent.
struct Handoff {
  ContainerInfo container;
  UniqueFd listener;   // verified with CheckIsListener
  pid_t peer_pid = 0;  // SO_PEERCRED: the runtime process, not the container
  uid_t peer_uid = 0;
};

// Counters for metrics; readable from any thread while the server runs.
struct HandoffCounters {
  HandoffCounters() {
    for (auto& r : rejected) r.store(0);
  }
  std::atomic<uint64_t> connections{0};                // accepted connections
  std::atomic<uint64_t> handoffs{0};                   // delivered to on_handoff
  std::atomic<uint64_t> rejected[kRejectReasonCount];  // index: RejectReason
  std::atomic<uint64_t> evicted_pending{0};            // closed because max_pending was exceeded
  std::atomic<uint64_t> dropped_idle{0};               // closed after idle_limit without a message

  uint64_t Rejected(RejectReason r) const { return rejected[static_cast<int>(r)].load(); }
  uint64_t RejectedTotal() const {
    uint64_t n = 0;
    for (const auto& r : rejected) n += r.load();
    return n;
  }
};

class HandoffServer {
 public:
  struct Options {
    // Where to listen. The parent directory is created (0755) if missing; a
    // stale socket file there is replaced only when nothing answers a
    // connect; the socket is made 0600 before listen().
    std::string socket_path = "/run/seccomp-agent/agent.sock";
    // Peers (SO_PEERCRED) whose uid is not listed are refused at accept.
    std::vector<uid_t> allowed_uids = {0};
    // Bytes a message may take before its JSON value must be complete.
    size_t max_message_bytes = 64 * 1024;
    // Connections accepted but not yet complete; above it the oldest one is
    // closed (with a log line).
    size_t max_pending = 256;
    // A connection that receives nothing for this long is closed with an
    // info line (not an error: crun waits seconds between connect and
    // send). absl::InfiniteDuration() or <= 0 disables it.
    absl::Duration idle_limit = absl::Minutes(10);
    // When >= 0: serve this already-listening AF_UNIX SOCK_STREAM socket
    // (systemd socket activation) instead of creating `socket_path`. The
    // server takes ownership (also on failure) and never unlinks its path.
    int adopt_fd = -1;
  };

  // Creates (or adopts) the socket and starts the server thread.
  // `on_handoff` runs on the server thread, one call at a time; it should
  // return quickly (other handoffs wait meanwhile) and must not destroy the
  // server. Errors: "another agent is listening on PATH" (AlreadyExists),
  // a non-socket file at PATH, bind/listen failures, a bad adopt_fd.
  static absl::StatusOr<std::unique_ptr<HandoffServer>> Start(
      Options options, std::function<void(Handoff)> on_handoff);

  // Stops the thread, closes every connection and received fd, and unlinks
  // the socket if this server created it and it is still the same file.
  ~HandoffServer();

  HandoffServer(const HandoffServer&) = delete;
  HandoffServer& operator=(const HandoffServer&) = delete;

  const HandoffCounters& counters() const { return counters_; }
  // The path served ("" for an adopted unnamed socket).
  const std::string& socket_path() const { return socket_path_; }
  // Connections currently waiting for a complete message.
  size_t pending_connections() const { return pending_count_.load(); }

 private:
  struct Connection;
  using Clock = std::chrono::steady_clock;

  HandoffServer(Options options, std::function<void(Handoff)> on_handoff);
  absl::Status Init();
  void Run();
  void AcceptAll();
  void PauseAccept();
  void ResumeAccept();
  void ReadConnection(uint64_t token);
  void CompleteMessage(uint64_t token);
  void Reject(uint64_t token, RejectReason reason, const std::string& why);
  void Close(uint64_t token);
  void DropIdle();
  int NextTimeoutMs() const;

  Options options_;
  std::function<void(Handoff)> on_handoff_;
  HandoffCounters counters_;
  std::string socket_path_;
  UnixListener listener_;  // the socket we bound at socket_path_ (none when adopted)

  UniqueFd listen_fd_;  // an adopted socket (LISTEN_FDS)
  int ListenFd() const { return listener_.valid() ? listener_.fd() : listen_fd_.get(); }
  UniqueFd epoll_fd_;
  UniqueFd stop_fd_;  // eventfd: wakes the loop to exit
  bool accept_paused_ = false;
  Clock::time_point accept_resume_at_;

  // Owned by the server thread only (after Start returns).
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;  // by token = accept order
  uint64_t next_token_ = 2;  // 0 and 1 are the stop and listen fds
  std::atomic<size_t> pending_count_{0};

  std::thread thread_;
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_HANDOFF_SERVER_H_
