// The exactly-once guard of the emulation backend (see injector.h): results
// of side effects whose reply never reached the task, keyed by the call's
// identity, kept for a short window, handed out once.
#ifndef SECCOMP_AGENT_INJECTOR_REPLAY_CACHE_H_
#define SECCOMP_AGENT_INJECTOR_REPLAY_CACHE_H_

#include <linux/seccomp.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/fd.h"
#include "agent/injector/substitute.h"

namespace seccomp_agent::injector {

struct ReplayResult {
  int64_t value = 0;               // success value (write count, bind 0)
  int error = 0;                   // errno, when the side effect failed
  std::shared_ptr<UniqueFd> file;  // an open whose fd was never installed
  uint32_t newfd_flags = 0;        // O_CLOEXEC for `file`
};

class ReplayCache {
 public:
  using Clock = std::function<absl::Time()>;
  // `now`: the clock entries age by (tests pass a fake one).
  explicit ReplayCache(absl::Duration window, Clock now = absl::Now)
      : window_(window), now_(std::move(now)) {}

  // Identity of a trapped call: tid, arch, nr, args, ip and the
  // substitute's own nr/args/bytes. A restarted call has the same registers.
  static std::string Key(const seccomp_notif& notif, const Substitute& sub);

  void Remember(std::string key, ReplayResult result);
  // Removes and returns the entry for `key` if it is younger than window.
  std::optional<ReplayResult> Take(const std::string& key);
  size_t size();
  // Claims waiting now for another claim of the same key (observability).
  size_t waiting_claims();

  // Held around one call's Take .. side effect .. Remember. A task's restarted
  // call can reach another worker while the interrupted one is still between
  // its side effect and Remember; the second claim of the same key waits for
  // the first to finish, so it finds the remembered result instead of
  // running the side effect again.
  class Claim {
   public:
    Claim(ReplayCache& cache, std::string key);
    ~Claim();
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;

   private:
    ReplayCache& cache_;
    const std::string key_;
  };

 private:
  void PruneLocked(absl::Time now);
  struct Entry {
    std::string key;
    ReplayResult result;
    absl::Time at;
  };
  const absl::Duration window_;
  const Clock now_;
  std::mutex mu_;
  std::list<Entry> entries_;       // oldest first; only lost replies land here
  std::set<std::string> claimed_;  // keys of calls being emulated now
  size_t waiting_ = 0;             // Claims blocked on claimed_
  std::condition_variable released_;
};

}  // namespace seccomp_agent::injector

#endif  // SECCOMP_AGENT_INJECTOR_REPLAY_CACHE_H_
