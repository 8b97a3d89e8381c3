// The real seccomp-agent binary, run as a child process of the test.
#ifndef SECCOMP_AGENT_INTEGRATION_HARNESS_AGENT_PROCESS_H_
#define SECCOMP_AGENT_INTEGRATION_HARNESS_AGENT_PROCESS_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "integration/harness/container.h"
#include "integration/harness/subprocess.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::integration {

// Path of //agent:seccomp-agent: $SECCOMP_AGENT_BIN if set, else the test's
// runfiles ($TEST_SRCDIR/seccomp_agent/agent/seccomp-agent).
std::string AgentBinaryPath();

struct AgentOptions {
  AgentOptions() = default;
  explicit AgentOptions(std::string policy) : policy_yaml(std::move(policy)) {}

  // Written to a file and passed as --policy; empty: the built-in policy.
  std::string policy_yaml;
  std::string allowed_uids;  // --allowed_uids when non-empty
  std::string log_level = "info";
  std::vector<std::string> extra_flags;
  absl::Duration ready_timeout = absl::Seconds(15);
};

class Agent {
 public:
  // Starts the agent on a fresh socket under a temp dir, with a decision
  // log there, and waits for "listening on <socket>".
  static absl::StatusOr<std::unique_ptr<Agent>> Start(const AgentOptions& options);
  ~Agent();  // SIGKILL if still running

  const std::string& socket_path() const { return socket_; }
  const std::string& decision_log_path() const { return decision_log_; }
  const std::string& policy_path() const { return policy_; }
  // The admin socket the agent opens by default, next to its socket.
  std::string admin_socket_path() const;
  // `seccomp-agentctl --socket=<admin socket> args...` (//agent/ctl:seccomp-agentctl
  // in the test's runfiles) to completion or `timeout`.
  ProcessResult Ctl(const std::vector<std::string>& args,
                    absl::Duration timeout = absl::Seconds(30)) const;
  pid_t pid() const { return process_->pid(); }

  // First stderr line containing `needle`, waiting up to `timeout`.
  std::optional<std::string> WaitForLog(const std::string& needle, absl::Duration timeout);
  // Waits until `count` stderr lines contain `needle`.
  bool WaitForLogCount(const std::string& needle, int count, absl::Duration timeout);
  int CountLog(const std::string& needle);
  std::string Stderr() { return process_->StderrText(); }

  // Every complete line of the decision log, parsed; a line that is not a
  // JSON object is returned as {"unparsed": "<line>"} so a test can see it.
  std::vector<nlohmann::json> Decisions();
  // Decisions of one container.
  std::vector<nlohmann::json> DecisionsFor(const std::string& container_id);
  // Waits until `pred` holds for the decisions of `container_id`.
  bool WaitForDecisions(const std::string& container_id,
                        const std::function<bool(const std::vector<nlohmann::json>&)>& pred,
                        absl::Duration timeout);

  // SIGTERM and wait; returns how it ended.
  ExitInfo Stop(absl::Duration timeout = absl::Seconds(10));
  // SIGKILL and reap.
  void Kill();
  void Signal(int sig) { process_->Signal(sig); }
  bool exited() { return process_->exited(); }

 private:
  Agent(TempDir dir) : dir_(std::move(dir)) {}
  TempDir dir_;
  std::string socket_, decision_log_, policy_;
  std::unique_ptr<Subprocess> process_;
};

// A policy that exercises every action, shared by the tests.
extern const char kTestPolicyYaml[];

}  // namespace seccomp_agent::integration

#endif  // SECCOMP_AGENT_INTEGRATION_HARNESS_AGENT_PROCESS_H_
