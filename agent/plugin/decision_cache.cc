#include "agent/plugin/decision_cache.h"

namespace seccomp_agent {
namespace plugin {

namespace v1 = ::seccompagent::v1;

DecisionCache::DecisionCache(size_t capacity, NowFn now)
    : capacity_(capacity), now_(now ? std::move(now) : NowFn([] { return MonoClock::now(); })) {}

bool DecisionCache::Get(const std::string& key, std::shared_ptr<const v1::Decision>* out) {
  const MonoClock::time_point now = now_();
  std::lock_guard<std::mutex> l(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return false;
  if (it->second->expiry <= now) {
    lru_.erase(it->second);
    map_.erase(it);
    return false;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  *out = it->second->decision;
  return true;
}

void DecisionCache::Put(const std::string& key, const v1::Decision& d, MonoClock::duration ttl) {
  if (capacity_ == 0) return;
  const MonoClock::time_point expiry = now_() + ttl;
  auto stored = std::make_shared<const v1::Decision>(d);
  std::lock_guard<std::mutex> l(mu_);
  auto it = map_.find(key);
  if (it != map_.end()) {
    it->second->decision = std::move(stored);
    it->second->expiry = expiry;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  while (map_.size() >= capacity_) {
    map_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key, std::move(stored), expiry});
  map_.emplace(key, lru_.begin());
}

size_t DecisionCache::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return map_.size();
}

}  // namespace plugin
}  // namespace seccomp_agent
