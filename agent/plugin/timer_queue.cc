#include "agent/plugin/timer_queue.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace seccomp_agent::plugin {

TimerQueue::TimerQueue() : thread_([this] { Run(); }) {}

uint64_t TimerQueue::Schedule(Clock::time_point when, Fn fn) {
  std::lock_guard<std::mutex> l(mu_);
  const uint64_t id = ++next_id_;
  auto it = by_time_.emplace(when, id);
  fns_.emplace(id, Item{std::move(fn), it});
  if (when < wake_at_) {
    wake_at_ = when;
    ++wakeups_;
    cv_.notify_one();
  }
  return id;
}

bool TimerQueue::Cancel(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = fns_.find(id);
  if (it == fns_.end()) return false;
  by_time_.erase(it->second.pos);
  fns_.erase(it);
  return true;
}

uint64_t TimerQueue::wakeups() const {
  std::lock_guard<std::mutex> l(mu_);
  return wakeups_;
}

void TimerQueue::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void TimerQueue::DrainAsShutdown(std::unique_lock<std::mutex>& l) {
  while (!fns_.empty()) {
    auto it = fns_.begin();
    Fn fn = std::move(it->second.fn);
    by_time_.erase(it->second.pos);
    fns_.erase(it);
    l.unlock();
    fn(true);
    l.lock();
  }
}

void TimerQueue::Run() {
  // Deadlines must fire on time even on a busy machine: best effort
  // (needs CAP_SYS_NICE, which the agent has as root; ignored otherwise).
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), -10);
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    if (stopping_) {
      DrainAsShutdown(l);
      return;
    }
    if (by_time_.empty()) {
      wake_at_ = Clock::time_point::max();
      cv_.wait(l);
      continue;
    }
    auto first = by_time_.begin();
    if (first->first > Clock::now()) {
      wake_at_ = first->first;  // a copy: Cancel() may free the node
      const Clock::time_point when = wake_at_;
      cv_.wait_until(l, when);
      continue;
    }
    auto it = fns_.find(first->second);
    Fn fn = std::move(it->second.fn);
    by_time_.erase(first);
    fns_.erase(it);
    l.unlock();
    fn(false);
    l.lock();
  }
}

}  // namespace seccomp_agent::plugin
