#include "agent/plugin/transition_log.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace seccomp_agent::plugin {

TransitionLog::TransitionLog(std::string plugin, std::string on_error, uint32_t timeout_ms,
                             int timeouts_in_a_row, LogSink sink)
    : plugin_(std::move(plugin)),
      on_error_(std::move(on_error)),
      timeout_ms_(timeout_ms),
      timeouts_in_a_row_(timeouts_in_a_row < 1 ? 1 : timeouts_in_a_row),
      sink_(std::move(sink)) {}

void TransitionLog::Emit(LogLevel level, const std::string& line) {
  if (sink_) return sink_(level, line);
  if (level == LogLevel::kWarn) {
    spdlog::warn("{}", line);
  } else {
    spdlog::info("{}", line);
  }
}

void TransitionLog::OnServing() {
  {
    std::lock_guard<std::mutex> l(mu_);
    // A plugin that answers health checks but times out on calls is not back.
    if (state_ != State::kUnavailable) return;
  }
  OnAnswer();
}

void TransitionLog::OnAnswer() {
  std::string line;
  {
    std::lock_guard<std::mutex> l(mu_);
    consecutive_timeouts_ = 0;
    if (state_ == State::kOk) return;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - down_since_).count();
    line = absl::StrFormat("plugin %s healthy again after %.1f s (%d calls failed meanwhile)",
                           plugin_, secs, failed_while_down_);
    state_ = State::kOk;
    failed_while_down_ = 0;
  }
  Emit(LogLevel::kInfo, line);
}

void TransitionLog::OnUnavailable(const std::string& why) {
  std::string line;
  {
    std::lock_guard<std::mutex> l(mu_);
    consecutive_timeouts_ = 0;
    if (state_ == State::kOk) down_since_ = std::chrono::steady_clock::now();
    if (state_ != State::kOk) ++failed_while_down_;
    if (state_ == State::kUnavailable) return;
    if (state_ == State::kOk) failed_while_down_ = 1;
    state_ = State::kUnavailable;
    line = absl::StrCat("plugin ", plugin_, " unavailable: ", why, "; its calls ", on_error_,
                        " until it answers again");
  }
  Emit(LogLevel::kWarn, line);
}

void TransitionLog::OnTimeout() {
  std::string line;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (state_ != State::kOk) {
      ++failed_while_down_;
      return;
    }
    if (++consecutive_timeouts_ < timeouts_in_a_row_) return;
    state_ = State::kTimingOut;
    down_since_ = std::chrono::steady_clock::now();
    failed_while_down_ = static_cast<uint64_t>(consecutive_timeouts_);
    line = absl::StrCat("plugin ", plugin_, ": ", consecutive_timeouts_,
                        " calls in a row timed out (timeout_ms ", timeout_ms_, "); its calls ",
                        on_error_, " until it answers again");
  }
  Emit(LogLevel::kWarn, line);
}

void TransitionLog::OnOtherError() {
  std::lock_guard<std::mutex> l(mu_);
  if (state_ != State::kOk) ++failed_while_down_;
}

}  // namespace seccomp_agent::plugin
