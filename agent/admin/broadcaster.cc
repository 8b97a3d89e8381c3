#include "agent/admin/broadcaster.h"

#include <algorithm>

namespace seccomp_agent::admin {

Broadcaster::Subscription::~Subscription() {
  if (owner_ != nullptr) owner_->Unsubscribe(this);
}

uint64_t Broadcaster::Subscription::Next(absl::Duration timeout,
                                         std::vector<DecisionEventCopy>* out) {
  std::unique_lock<std::mutex> lock(mu_);
  if (queue_.empty() && dropped_ == 0) {
    cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                 [this] { return !queue_.empty() || dropped_ != 0; });
  }
  out->insert(out->end(), std::make_move_iterator(queue_.begin()),
              std::make_move_iterator(queue_.end()));
  queue_.clear();
  return std::exchange(dropped_, 0);
}

std::unique_ptr<Broadcaster::Subscription> Broadcaster::Subscribe(const std::string& container_id,
                                                                  const std::string& pod_namespace,
                                                                  size_t queue_size) {
  auto s = std::make_unique<Subscription>();
  s->owner_ = this;
  s->container_id_ = container_id;
  s->pod_namespace_ = pod_namespace;
  s->cap_ = queue_size == 0 ? kDefaultQueue : std::min(queue_size, kMaxQueue);
  std::lock_guard<std::mutex> lock(mu_);
  subs_.push_back(s.get());
  count_.store(subs_.size());
  return s;
}

void Broadcaster::Unsubscribe(Subscription* s) {
  std::lock_guard<std::mutex> lock(mu_);
  subs_.erase(std::remove(subs_.begin(), subs_.end(), s), subs_.end());
  count_.store(subs_.size());
}

void Broadcaster::OnDecision(const DecisionRecord& r) {
  if (count_.load(std::memory_order_relaxed) == 0) return;
  const SyscallEvent* ev = r.event;
  const ContainerInfo* c = ev != nullptr ? ev->container : nullptr;
  static const ContainerInfo kNone;
  if (c == nullptr) c = &kNone;
  std::lock_guard<std::mutex> lock(mu_);
  for (Subscription* s : subs_) {
    if (!s->container_id_.empty() && s->container_id_ != c->id) continue;
    if (!s->pod_namespace_.empty() && s->pod_namespace_ != c->pod_namespace) continue;
    std::lock_guard<std::mutex> slock(s->mu_);
    if (s->queue_.size() >= s->cap_) {
      ++s->dropped_;
      dropped_total_.fetch_add(1, std::memory_order_relaxed);
      s->cv_.notify_one();
      continue;
    }
    DecisionEventCopy e;
    e.time_unix_ns = absl::ToUnixNanos(absl::Now());
    e.container_id = c->id;
    e.pod_namespace = c->pod_namespace;
    e.pod_name = c->pod_name;
    e.container_name = c->container_name;
    if (ev != nullptr) {
      e.pid = ev->pid;
      e.syscall = ev->syscall;
      if (ev->abs_path) {
        e.path = *ev->abs_path;
      } else if (ev->path) {
        e.path = *ev->path;
      }
    }
    e.rule = std::string(r.rule);
    e.action = r.action;
    e.result = r.result;
    e.backend = std::string(r.backend);
    e.latency_ns = r.latency_ns;
    s->queue_.push_back(std::move(e));
    s->cv_.notify_one();
  }
}

}  // namespace seccomp_agent::admin
