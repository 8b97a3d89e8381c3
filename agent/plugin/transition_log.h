// One log line per change of a plugin's availability, not one per call:
// "unavailable", "N calls in a row timed out", "healthy again". Calls that
// fail while a plugin is down are in the decision log; this says when it
// went down and came back.
#ifndef SECCOMP_AGENT_PLUGIN_TRANSITION_LOG_H_
#define SECCOMP_AGENT_PLUGIN_TRANSITION_LOG_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

namespace seccomp_agent::plugin {

enum class LogLevel { kInfo, kWarn };
// Where the lines go; null: spdlog.
using LogSink = std::function<void(LogLevel, const std::string&)>;

class TransitionLog {
 public:
  // `on_error` says what failed calls do meanwhile ("deny with EPERM").
  TransitionLog(std::string plugin, std::string on_error, uint32_t timeout_ms,
                int timeouts_in_a_row, LogSink sink);

  void OnAnswer();   // a decision or no_opinion came back
  void OnServing();  // the health check says SERVING: back only if it was unavailable
  void OnUnavailable(const std::string& why);  // refused, down, stream broken, NOT_SERVING
  void OnTimeout();                            // one call timed out
  void OnOtherError();                         // counted while down, changes nothing

 private:
  enum class State { kOk, kUnavailable, kTimingOut };
  void Emit(LogLevel level, const std::string& line);

  const std::string plugin_;
  const std::string on_error_;
  const uint32_t timeout_ms_;
  const int timeouts_in_a_row_;
  const LogSink sink_;
  std::mutex mu_;
  State state_ = State::kOk;
  int consecutive_timeouts_ = 0;
  uint64_t failed_while_down_ = 0;
  std::chrono::steady_clock::time_point down_since_{};
};

}  // namespace seccomp_agent::plugin

#endif  // SECCOMP_AGENT_PLUGIN_TRANSITION_LOG_H_
