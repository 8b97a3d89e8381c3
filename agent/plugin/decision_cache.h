// Bounded LRU of validated plugin decisions, each with its own expiry. The
// clock is injected (tests drive expiry without sleeping).
#ifndef SECCOMP_AGENT_PLUGIN_DECISION_CACHE_H_
#define SECCOMP_AGENT_PLUGIN_DECISION_CACHE_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "agent/plugin/decision.h"
#include "proto/seccompagent/v1/plugin.pb.h"

namespace seccomp_agent::plugin {

// A monotonic clock: steady_clock::now, or a test's.
using MonoClock = std::chrono::steady_clock;
using NowFn = std::function<MonoClock::time_point()>;

class DecisionCache {
 public:
  // `now` null: steady_clock::now.
  DecisionCache(size_t capacity, NowFn now);

  // Shares the stored decision (no proto copy). An expired entry is dropped
  // and is a miss.
  bool Get(absl::string_view key, std::shared_ptr<const ::seccompagent::v1::Decision>* out);
  // The engine's fast path: true only for a plain decision (allow, deny,
  // return, no_opinion), copied out by value. Allocates nothing. `*other`
  // (when given) says whether a live entry that is not plain was there.
  bool GetPlain(absl::string_view key, PlainDecision* out, bool* other = nullptr) {
    return GetPlain(key, Now(), out, other);
  }
  // The same at `now` (a time read from Now() for several lookups: one
  // clock read per decision).
  bool GetPlain(absl::string_view key, MonoClock::time_point now, PlainDecision* out,
                bool* other = nullptr);
  MonoClock::time_point Now() const { return now_(); }
  // Stores `d` for `ttl` from now, evicting the least recently used entry
  // when full. Capacity 0 stores nothing.
  void Put(absl::string_view key, const ::seccompagent::v1::Decision& d, MonoClock::duration ttl);
  size_t size() const;

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const ::seccompagent::v1::Decision> decision;
    bool is_plain = false;
    PlainDecision plain;  // is_plain: `decision` as a value
    MonoClock::time_point expiry;
  };
  // The live entry of `key` (now the most recent), or null (an expired
  // one is dropped). mu_ held.
  Entry* Find(absl::string_view key, MonoClock::time_point now);
  const size_t capacity_;
  const NowFn now_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> map_;
};

}  // namespace seccomp_agent::plugin

#endif  // SECCOMP_AGENT_PLUGIN_DECISION_CACHE_H_
