// grpc.health.v1 checks of every plugin of one dispatcher: at start, every
// health_interval, and soon after a call failed as unavailable (Kick).
#ifndef SECCOMP_AGENT_PLUGIN_HEALTH_CHECKER_H_
#define SECCOMP_AGENT_PLUGIN_HEALTH_CHECKER_H_

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "agent/plugin/plugin_state.h"

namespace seccomp_agent::plugin {

class HealthChecker {
 public:
  struct Options {
    absl::Duration interval;
    absl::Duration timeout;        // of each Check
    absl::Duration kick_interval;  // at most one kicked check per this
  };
  // `plugins` and `ops` outlive the checker.
  HealthChecker(Options opts, std::vector<PluginState*> plugins, OutstandingOps* ops);
  ~HealthChecker() { Stop(); }
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void Start();
  // Stops the loop and any re-check; Check callbacks still in flight are
  // counted in `ops` (the owner waits for them before destroying this).
  void Stop();
  // Brings p's next check forward (at most one check per kick_interval).
  void Kick(PluginState* p);

 private:
  void Loop();
  void StartCheck(PluginState* p, bool overall);

  const Options opts_;
  const std::vector<PluginState*> plugins_;
  OutstandingOps* const ops_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // under mu_
  std::thread thread_;
};

}  // namespace seccomp_agent::plugin

#endif  // SECCOMP_AGENT_PLUGIN_HEALTH_CHECKER_H_
