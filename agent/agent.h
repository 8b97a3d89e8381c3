// The agent daemon: every part it runs, owned by one object. Members are
// declared in dependency order, so construction builds each part after what
// it uses and destruction (RAII, reverse order) stops the parts that take
// work from outside (metrics, admin, hook and handoff sockets) before the
// engine, and the engine (which waits for decisions in flight) before the
// injector and plugins those decisions use.
#ifndef SECCOMP_AGENT_AGENT_H_
#define SECCOMP_AGENT_AGENT_H_

#include <signal.h>

#include <atomic>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/admin/admin_server.h"
#include "agent/admin/broadcaster.h"
#include "agent/config.h"
#include "agent/engine/decision_log.h"
#include "agent/engine/engine.h"
#include "agent/handoff/server.h"
#include "agent/holder/engine_sync.h"
#include "agent/hook_server.h"
#include "agent/metrics/decision_metrics.h"
#include "agent/metrics/http_server.h"
#include "agent/metrics/registry.h"
#include "agent/policy_set.h"
#include "oci-hook/hook_protocol.h"

namespace seccomp_agent {

class Agent {
 public:
  // Builds and starts every part, then tells systemd it is ready. The
  // caller has blocked the signals (BlockAgentSignals) first.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(Config config);
  ~Agent();

  // Serves until SIGINT or SIGTERM; SIGHUP reloads the policy.
  void ServeUntilSignal(const sigset_t& signals);

 private:
  explicit Agent(Config config) : config_(std::move(config)) {}
  absl::Status LoadPolicies();
  absl::Status OpenDecisionLog();
  void OpenHolder();
  absl::Status StartEngine();
  absl::Status StartHandoff();
  absl::Status StartHookSocket();
  absl::Status StartAdmin();
  absl::Status StartMetrics();
  void AddAgentMetrics();
  void OnHandoff(Handoff h);
  // SIGHUP and the admin API: re-reads every policy file; a bad file keeps
  // its previous version (PolicySet::Reload).
  absl::StatusOr<admin::PolicySummary> Reload();
  std::vector<admin::PolicySummary> PolicySummaries() const;

  const Config config_;
  std::vector<holder::NamedFd> listen_fds_;  // LISTEN_FDS other than the fd store's
  std::unique_ptr<DecisionLog> decisions_;
  std::unique_ptr<holder::EngineSync> holder_sync_;
  // Observers: outlive the engine that calls them.
  metrics::DecisionMetrics decision_metrics_{config_.metrics};
  admin::Broadcaster broadcaster_;
  // The policies with the injector, plugins and router of each: outlive
  // the engine that decides with them.
  std::unique_ptr<PolicySet> policies_;
  std::unique_ptr<Engine> engine_;
  // What feeds the engine.
  std::unique_ptr<HandoffServer> handoff_;
  std::unique_ptr<HookRequestHandler> hook_handler_;
  std::unique_ptr<hook::HookServer> hook_server_;
  // What reports on everything above.
  std::unique_ptr<admin::AdminServer> admin_;
  std::atomic<bool> serving_{true};
  metrics::Registry registry_;
  std::unique_ptr<metrics::HttpServer> metrics_server_;
};

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (call it before
// any thread starts: they inherit the mask) and ignores SIGPIPE. Returns the
// set for Agent::ServeUntilSignal.
sigset_t BlockAgentSignals();

// The whole program after flag parsing: the holder (--holder), the policy
// check (--check_policy) or the agent. Returns the exit code: 0, 1 when a
// part fails to start, 2 for a bad configuration or policy.
int RunAgentMain(const Config& config);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_AGENT_H_
