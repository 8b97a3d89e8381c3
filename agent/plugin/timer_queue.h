// One thread running deadline callbacks (the dispatcher's own deadlines:
// they fire even when gRPC's do not, e.g. on a wedged stream).
#ifndef SECCOMP_AGENT_PLUGIN_TIMER_QUEUE_H_
#define SECCOMP_AGENT_PLUGIN_TIMER_QUEUE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace seccomp_agent::plugin {

class TimerQueue {
 public:
  using Clock = std::chrono::steady_clock;
  // `shutdown` is true when the callback runs early because the queue stops.
  using Fn = std::function<void(bool shutdown)>;

  TimerQueue();
  ~TimerQueue() { Stop(); }
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  uint64_t Schedule(Clock::time_point when, Fn fn);
  // True when the callback had not started (it never will).
  bool Cancel(uint64_t id);
  // Runs every pending callback now with shutdown=true, then stops.
  void Stop();
  // How many times Schedule woke the thread (for tests).
  uint64_t wakeups() const;

 private:
  struct Item {
    Fn fn;
    std::multimap<Clock::time_point, uint64_t>::iterator pos;
  };
  void Run();
  void DrainAsShutdown(std::unique_lock<std::mutex>& l);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // When the thread wakes up by itself: a deadline it sleeps until (perhaps
  // cancelled since), or max while it waits for work. Schedule wakes it only
  // for an earlier deadline: a plugin call schedules and cancels one timer
  // each, and waking a nice -10 thread per call cost a context switch.
  Clock::time_point wake_at_ = Clock::time_point::max();
  uint64_t wakeups_ = 0;
  bool stopping_ = false;
  uint64_t next_id_ = 0;
  std::multimap<Clock::time_point, uint64_t> by_time_;
  std::unordered_map<uint64_t, Item> fns_;
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace seccomp_agent::plugin

#endif  // SECCOMP_AGENT_PLUGIN_TIMER_QUEUE_H_
