// The admin socket: AdminService (proto/seccompagent/v1/admin.proto) and
// grpc.health.v1.Health on one unix socket.
//
// Peer credentials: gRPC's own unix listener gives no access to the peer,
// so this server accepts connections itself, checks SO_PEERCRED (the
// peer's effective uid must be in `allowed_uids`), and only then hands the
// fd to the gRPC server with grpc::AddInsecureChannelFromFd. A refused peer
// is closed at once and logged:
//   admin connection rejected: peer pid <pid> uid <uid> not in --admin_uids
// The socket file is 0600 as a first fence; the uid check holds even if an
// operator loosens the mode.
#ifndef SECCOMP_AGENT_ADMIN_ADMIN_SERVER_H_
#define SECCOMP_AGENT_ADMIN_ADMIN_SERVER_H_

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/admin/broadcaster.h"
#include "agent/common/fd.h"
#include "agent/common/unix_socket.h"
#include "agent/engine/engine.h"
#include "agent/handoff/server.h"
#include "proto/seccompagent/v1/admin.grpc.pb.h"

namespace grpc {
class Server;
}

namespace seccomp_agent::admin {

namespace v1 = ::seccompagent::v1;

struct PolicySummary {
  std::string source;  // file path or "built-in"
  int rules = 0;
  std::string name;  // "default" or a --policy_dir name; "" unnamed
  uint64_t version = 0;
  std::string error;  // the last load's error
};

class AdminServer {
 public:
  struct Options {
    std::string socket_path = "/run/seccomp-agent/admin.sock";
    std::vector<uid_t> allowed_uids = {0};
    // Mode of the socket file.
    mode_t socket_mode = 0600;
    // Live containers (Engine::Containers). Required.
    std::function<std::vector<ContainerSnapshot>()> containers;
    // Monotonic totals over every container served (Engine::Totals).
    // Optional: without it GetStats sums the live containers.
    std::function<EngineTotals()> totals;
    // The policy in force. Required.
    std::function<PolicySummary()> policy;
    // Every policy (GetStats, ReloadPolicy). Optional.
    std::function<std::vector<PolicySummary>()> policies;
    // Re-reads the policy file; errors keep the old policy. Required.
    // FailedPrecondition: no file to reload; InvalidArgument: a bad file.
    std::function<absl::StatusOr<PolicySummary>()> reload;
    // Handoff counters (optional) and pending connections.
    std::function<void(v1::HandoffStats*)> handoff_stats;
    // The decision stream. Required.
    Broadcaster* broadcaster = nullptr;
    // Concurrent WatchDecisions streams; more fail with RESOURCE_EXHAUSTED.
    int max_watchers = 16;
    // Optional: false makes health NOT_SERVING while it stays false (the
    // agent: no engine worker stuck in one substitution).
    std::function<bool()> healthy;
  };

  // Creates the socket (parent directory 0755 if missing; a stale socket is
  // replaced only when nothing answers on it), starts gRPC and the accept
  // thread. Health reports SERVING once Start returns, until SetServing(false).
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(Options options);
  // Closes the socket (unlinks it if it is still ours), ends streams, stops.
  ~AdminServer();

  void SetServing(bool serving);
  uint64_t rejected_connections() const { return rejected_.load(); }
  uint64_t accepted_connections() const { return accepted_.load(); }
  const std::string& socket_path() const { return options_.socket_path; }

 private:
  class AdminServiceImpl;
  class HealthServiceImpl;
  explicit AdminServer(Options options);
  void AcceptLoop();

  Options options_;
  UnixListener listener_;
  UniqueFd stop_fd_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> serving_{true};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<int> watchers_{0};
  absl::Time started_;
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<HealthServiceImpl> health_;
  std::unique_ptr<grpc::Server> server_;
  std::thread accept_thread_;
};

// Fills `out` from the handoff server's counters.
void FillHandoffStats(const HandoffCounters& c, size_t pending, v1::HandoffStats* out);

}  // namespace seccomp_agent::admin

#endif  // SECCOMP_AGENT_ADMIN_ADMIN_SERVER_H_
