// A token bucket on a nanosecond clock: `rate` tokens per second, at most
// `burst` held. Not thread-safe: the engine's leader owns each container's
// notification bucket; the decision log takes bytes from its own under a lock.
#ifndef SECCOMP_AGENT_ENGINE_TOKEN_BUCKET_H_
#define SECCOMP_AGENT_ENGINE_TOKEN_BUCKET_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace seccomp_agent {

class TokenBucket {
 public:
  TokenBucket() = default;
  // Starts full. `rate` > 0, `burst` >= 1.
  TokenBucket(double rate, double burst, int64_t now_ns)
      : rate_(rate), burst_(burst), tokens_(burst), refilled_ns_(now_ns) {}

  // Takes `n` tokens if there are that many (after refilling up to
  // `now_ns`); takes nothing otherwise.
  bool Take(int64_t now_ns, double n = 1.0) {
    Refill(now_ns);
    if (tokens_ >= n) {
      tokens_ -= n;
      return true;
    }
    return false;
  }

  // Adds what `rate` earned since the last refill, up to `burst`.
  void Refill(int64_t now_ns) {
    if (now_ns > refilled_ns_) {
      const double gained = static_cast<double>(now_ns - refilled_ns_) * 1e-9 * rate_;
      tokens_ = std::min(burst_, tokens_ + gained);
      refilled_ns_ = now_ns;
    }
  }

  // Nanoseconds from the last refill until one token is there (0: now).
  int64_t NsUntilToken() const {
    if (tokens_ >= 1.0) return 0;
    return static_cast<int64_t>(std::ceil((1.0 - tokens_) / rate_ * 1e9));
  }

  double rate() const { return rate_; }
  double burst() const { return burst_; }
  double tokens() const { return tokens_; }

 private:
  double rate_ = 0;
  double burst_ = 0;
  double tokens_ = 0;
  int64_t refilled_ns_ = 0;
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_TOKEN_BUCKET_H_
