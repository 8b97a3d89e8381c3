// One container's rate limit (EngineOptions::container_rate): the token
// bucket plus what the engine needs around it: how long to park the
// listener, the park's bookkeeping and the throttle log lines. The engine
// keeps only the parked set and its timer.
//
// Threads: Admit and ParkNs are the leader's (the bucket is not locked);
// Park/Unpark run under the engine's throttle lock; the log pacing is
// atomic (Remove reads it from any thread).
#ifndef SECCOMP_AGENT_ENGINE_RATE_LIMITER_H_
#define SECCOMP_AGENT_ENGINE_RATE_LIMITER_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "agent/engine/token_bucket.h"

namespace seccomp_agent {

class RateLimiter {
 public:
  // What every container's limiter does at the limit.
  struct Settings {
    bool deny = false;       // answer an errno (else park the listener)
    std::string deny_errno;  // its name, for the log ("EAGAIN")
    int64_t min_park_ns = 10'000'000;
    int64_t log_interval_ns = 10'000'000'000;
  };

  RateLimiter() = default;  // no limit
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // `rate` notifications/s (> 0), at most `burst` (>= 1) at once; starts full.
  void Configure(double rate, double burst, int64_t now_ns);
  bool limited() const { return rate_ > 0; }
  double rate() const { return rate_; }
  double burst() const { return burst_; }

  // Leader: takes one token if there is one.
  bool Admit(int64_t now_ns) { return bucket_.Take(now_ns); }
  // Leader: how long to park from now: until a token is there, at least
  // min_park_ns (the tokens gathered meanwhile are served in one go).
  int64_t ParkNs(const Settings& s) const;

  // Throttle lock held. Parked at `now_ns` until `until_ns`.
  void Park(int64_t now_ns, int64_t until_ns);
  int64_t parked_until_ns() const { return parked_until_ns_; }  // 0: not parked
  // Throttle lock held. Ends the park; returns how long it lasted (0 when
  // not parked).
  int64_t Unpark(int64_t now_ns);

  // Container `id`'s `hits`-th hit: logs the first one, then a summary at
  // most every log_interval_ns.
  void LogHit(const std::string& id, uint64_t hits, int64_t now_ns, const Settings& s);
  // At removal: logs the hits no summary reported yet.
  void LogRemoved(const std::string& id, uint64_t hits, const Settings& s) const;

 private:
  double rate_ = 0;
  double burst_ = 0;
  TokenBucket bucket_;
  int64_t parked_since_ns_ = 0;
  int64_t parked_until_ns_ = 0;
  std::atomic<int64_t> log_due_ns_{0};
  std::atomic<int64_t> logged_at_ns_{0};
  std::atomic<uint64_t> logged_{0};
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_RATE_LIMITER_H_
