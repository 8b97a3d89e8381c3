#include "agent/injector/replay_cache.h"

#include "absl/strings/str_cat.h"

namespace seccomp_agent::injector {

std::string ReplayCache::Key(const seccomp_notif& notif, const Substitute& sub) {
  std::string k;
  auto put = [&k](const void* p, size_t n) { k.append(static_cast<const char*>(p), n); };
  put(&notif.pid, sizeof(notif.pid));
  put(&notif.data.arch, sizeof(notif.data.arch));
  put(&notif.data.nr, sizeof(notif.data.nr));
  put(&notif.data.instruction_pointer, sizeof(notif.data.instruction_pointer));
  put(notif.data.args, sizeof(notif.data.args));
  put(&sub.nr, sizeof(sub.nr));
  put(sub.args, sizeof(sub.args));
  put(&sub.args_in_buf_mask, sizeof(sub.args_in_buf_mask));
  k.append(sub.buf);
  return k;
}

void ReplayCache::PruneLocked(absl::Time now) {
  while (!entries_.empty() && now - entries_.front().at > window_) entries_.pop_front();
}

void ReplayCache::Remember(std::string key, ReplayResult result) {
  if (window_ <= absl::ZeroDuration()) return;
  std::lock_guard<std::mutex> lock(mu_);
  absl::Time now = now_();
  PruneLocked(now);
  entries_.push_back(Entry{std::move(key), std::move(result), now});
}

std::optional<ReplayResult> ReplayCache::Take(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  PruneLocked(now_());
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->key == key) {
      ReplayResult r = std::move(it->result);
      entries_.erase(it);
      return r;
    }
  }
  return std::nullopt;
}

ReplayCache::Claim::Claim(ReplayCache& cache, std::string key)
    : cache_(cache), key_(std::move(key)) {
  std::unique_lock<std::mutex> lock(cache_.mu_);
  ++cache_.waiting_;
  cache_.released_.wait(lock, [this] { return cache_.claimed_.count(key_) == 0; });
  --cache_.waiting_;
  cache_.claimed_.insert(key_);
}

ReplayCache::Claim::~Claim() {
  {
    std::lock_guard<std::mutex> lock(cache_.mu_);
    cache_.claimed_.erase(key_);
  }
  cache_.released_.notify_all();
}

size_t ReplayCache::size() {
  std::lock_guard<std::mutex> lock(mu_);
  PruneLocked(now_());
  return entries_.size();
}

size_t ReplayCache::waiting_claims() {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

}  // namespace seccomp_agent::injector
