#include "agent/plugin/decision_cache.h"

namespace seccomp_agent::plugin {

namespace v1 = ::seccompagent::v1;

DecisionCache::DecisionCache(size_t capacity, NowFn now)
    : capacity_(capacity), now_(now ? std::move(now) : NowFn([] { return MonoClock::now(); })) {}

DecisionCache::Entry* DecisionCache::Find(absl::string_view key, MonoClock::time_point now) {
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  if (it->second->expiry <= now) {
    lru_.erase(it->second);
    map_.erase(it);
    return nullptr;
  }
  if (it->second != lru_.begin()) lru_.splice(lru_.begin(), lru_, it->second);
  return &*it->second;
}

bool DecisionCache::Get(absl::string_view key, std::shared_ptr<const v1::Decision>* out) {
  const MonoClock::time_point now = now_();
  std::lock_guard<std::mutex> l(mu_);
  Entry* e = Find(key, now);
  if (e == nullptr) return false;
  *out = e->decision;
  return true;
}

bool DecisionCache::GetPlain(absl::string_view key, MonoClock::time_point now, PlainDecision* out,
                             bool* other) {
  std::lock_guard<std::mutex> l(mu_);
  Entry* e = Find(key, now);
  if (other != nullptr) *other = e != nullptr && !e->is_plain;
  if (e == nullptr || !e->is_plain) return false;
  *out = e->plain;
  return true;
}

void DecisionCache::Put(absl::string_view key, const v1::Decision& d, MonoClock::duration ttl) {
  if (capacity_ == 0) return;
  const MonoClock::time_point expiry = now_() + ttl;
  Entry fresh{std::string(key), std::make_shared<const v1::Decision>(d), false, {}, expiry};
  fresh.is_plain = AsPlain(d, &fresh.plain);
  std::lock_guard<std::mutex> l(mu_);
  auto it = map_.find(key);
  if (it != map_.end()) {
    *it->second = std::move(fresh);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  while (map_.size() >= capacity_) {
    map_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(std::move(fresh));
  map_.emplace(lru_.front().key, lru_.begin());
}

size_t DecisionCache::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return map_.size();
}

}  // namespace seccomp_agent::plugin
