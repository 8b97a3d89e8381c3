#include "agent/engine/rate_limiter.h"

#include <algorithm>

#include "agent/common/log.h"

namespace seccomp_agent {

void RateLimiter::Configure(double rate, double burst, int64_t now_ns) {
  rate_ = rate;
  burst_ = burst;
  bucket_ = TokenBucket(rate, burst, now_ns);
}

int64_t RateLimiter::ParkNs(const Settings& s) const {
  return std::max<int64_t>(s.min_park_ns, bucket_.NsUntilToken());
}

void RateLimiter::Park(int64_t now_ns, int64_t until_ns) {
  parked_since_ns_ = now_ns;
  parked_until_ns_ = until_ns;
}

int64_t RateLimiter::Unpark(int64_t now_ns) {
  if (parked_until_ns_ == 0) return 0;
  parked_until_ns_ = 0;
  return now_ns - parked_since_ns_;
}

void RateLimiter::LogHit(const std::string& id, uint64_t hits, int64_t now_ns, const Settings& s) {
  const int64_t due = log_due_ns_.load(std::memory_order_relaxed);
  if (now_ns < due) return;
  if (due == 0) {
    spdlog::warn("container {} hit its rate limit ({} notifications/s, burst {}): {}", id, rate_,
                 burst_,
                 s.deny ? "answering " + s.deny_errno : std::string("delaying its notifications"));
  } else {
    spdlog::warn(
        "container {} throttled: {} notifications {} in the last {} s", id,
        hits - logged_.load(std::memory_order_relaxed), s.deny ? "denied" : "delayed",
        (now_ns - logged_at_ns_.load(std::memory_order_relaxed) + 500'000'000) / 1'000'000'000);
  }
  logged_.store(hits, std::memory_order_relaxed);
  logged_at_ns_.store(now_ns, std::memory_order_relaxed);
  log_due_ns_.store(now_ns + s.log_interval_ns, std::memory_order_relaxed);
}

void RateLimiter::LogRemoved(const std::string& id, uint64_t hits, const Settings& s) const {
  const uint64_t logged = logged_.load(std::memory_order_relaxed);
  if (hits <= logged) return;
  spdlog::warn("container {} throttled: {} notifications {} since the last report (removed)", id,
               hits - logged, s.deny ? "denied" : "delayed");
}

}  // namespace seccomp_agent
