// The decision log: one JSON object per line per decision (time, container,
// pid, syscall, decoded args, rule, action, result, latency). Thread-safe.
#ifndef SECCOMP_AGENT_ENGINE_DECISION_LOG_H_
#define SECCOMP_AGENT_ENGINE_DECISION_LOG_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "agent/policy/event.h"

namespace seccomp_agent {

struct DecisionRecord {
  const SyscallEvent* event = nullptr;
  std::string rule;          // rule name, "default" or "runtime-init"
  std::string action;        // "allow", "deny", "return", "log", ...
  std::string result;        // "continue", "EPERM", "0", "task-gone", ...
  std::string backend;       // injector backend for substitutions, else ""
  int64_t latency_ns = 0;    // from NOTIF_RECV to the reply
};

class DecisionLog {
 public:
  // "-" is stdout; otherwise the file is opened for appending (0640).
  static absl::StatusOr<std::unique_ptr<DecisionLog>> Open(const std::string& path);
  ~DecisionLog();

  void Write(const DecisionRecord& r);
  // The JSON line (without newline) Write() would append; for tests.
  static std::string Format(const DecisionRecord& r);

 private:
  explicit DecisionLog(FILE* f, bool owned) : f_(f), owned_(owned) {}
  std::mutex mu_;
  FILE* f_;
  bool owned_;
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_DECISION_LOG_H_
