// The agent's configuration: every flag, parsed and validated in one place
// (ConfigFromFlags), so the rest of the agent never reads a flag and never
// sees a value it would have to reject.
#ifndef SECCOMP_AGENT_CONFIG_H_
#define SECCOMP_AGENT_CONFIG_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/engine/decision_log.h"
#include "agent/engine/engine.h"
#include "agent/holder/engine_sync.h"
#include "agent/metrics/decision_metrics.h"
#include "agent/metrics/http_server.h"
#include "agent/policy/selector.h"

namespace seccomp_agent {

struct Config {
  std::string socket;       // --socket: the handoff socket
  std::string policy_path;  // --policy; "" = the built-in default
  // --policy_dir, else the policy_dir of --hook_config; "" = none.
  std::string policy_dir;
  std::vector<PolicySelector> selectors;    // from --hook_config
  std::string decision_log;                 // "" = none, "-" = stdout
  DecisionLogOptions decision_log_options;  // rate limit and rotation
  std::string log_level;
  bool check_policy = false;  // validate the policy and exit
  bool run_holder = false;    // run as the listener-fd holder (internal)

  std::vector<uid_t> allowed_uids;  // handoff and hook socket peers
  uint64_t max_message_bytes = 0;
  std::string hook_socket;  // resolved path; "" = no hook socket

  std::string holder_socket_flag;  // as given: ResolveHolderMode reads it
  std::string holder_socket;       // resolved path
  holder::HolderMode holder_mode = holder::HolderMode::kAuto;

  std::string admin_socket;  // resolved path; "" = no admin API
  std::vector<uid_t> admin_uids;

  std::string metrics_address;      // "" = no metrics endpoint
  metrics::HttpServerOptions http;  // its connection cap and timeout
  metrics::DecisionMetrics::Options metrics;

  EngineOptions engine;
};

// Reads and checks every flag (after absl::ParseCommandLine). An error names
// the flag and the bad value.
absl::StatusOr<Config> ConfigFromFlags();

// `name` in the directory of `socket` ("./name" when it has none).
std::string SocketNextTo(const std::string& socket, const std::string& name);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_CONFIG_H_
