#include "agent/plugin/timer_queue.h"

#include <future>
#include <vector>

#include "gtest/gtest.h"

namespace seccomp_agent::plugin {
namespace {

using Clock = TimerQueue::Clock;

TEST(TimerQueue, RunsInDeadlineOrder) {
  TimerQueue q;
  std::mutex mu;
  std::vector<int> order;
  std::promise<void> all;
  const Clock::time_point now = Clock::now();
  auto add = [&](int ms, int tag) {
    q.Schedule(now + std::chrono::milliseconds(ms), [&, tag](bool shutdown) {
      EXPECT_FALSE(shutdown);
      std::lock_guard<std::mutex> l(mu);
      order.push_back(tag);
      if (order.size() == 3) all.set_value();
    });
  };
  add(30, 3);
  add(10, 1);
  add(20, 2);
  all.get_future().wait();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TimerQueue, CancelledCallbackNeverRuns) {
  TimerQueue q;
  std::atomic<int> runs{0};
  const uint64_t id = q.Schedule(Clock::now() + std::chrono::hours(1), [&](bool) { ++runs; });
  EXPECT_TRUE(q.Cancel(id));
  EXPECT_FALSE(q.Cancel(id)) << "already cancelled";
  q.Stop();
  EXPECT_EQ(runs.load(), 0);
}

TEST(TimerQueue, StopRunsPendingAsShutdown) {
  TimerQueue q;
  std::atomic<int> shutdowns{0};
  q.Schedule(Clock::now() + std::chrono::hours(1), [&](bool s) { shutdowns += s ? 1 : 100; });
  q.Schedule(Clock::now() + std::chrono::hours(2), [&](bool s) { shutdowns += s ? 1 : 100; });
  q.Stop();
  EXPECT_EQ(shutdowns.load(), 2);
}

// A call schedules one deadline and cancels it; the next call's deadline is
// later than the one the thread already sleeps until, so it is not woken.
TEST(TimerQueue, WakesTheThreadOnlyForAnEarlierDeadline) {
  TimerQueue q;
  const Clock::time_point now = Clock::now();
  const uint64_t a = q.Schedule(now + std::chrono::hours(1), [](bool) {});
  EXPECT_EQ(q.wakeups(), 1u);
  EXPECT_TRUE(q.Cancel(a));
  q.Schedule(now + std::chrono::hours(2), [](bool) {});
  EXPECT_EQ(q.wakeups(), 1u) << "a later deadline needs no wake-up";
  q.Schedule(now + std::chrono::minutes(30), [](bool) {});
  EXPECT_EQ(q.wakeups(), 2u) << "an earlier deadline does";
}

// The thread sleeps until a cancelled deadline and then finds the later one.
TEST(TimerQueue, ALaterDeadlineRunsAfterTheEarlierWasCancelled) {
  TimerQueue q;
  std::promise<bool> ran;
  const uint64_t a = q.Schedule(Clock::now() + std::chrono::milliseconds(5), [](bool) {});
  q.Cancel(a);
  q.Schedule(Clock::now() + std::chrono::milliseconds(20), [&](bool s) { ran.set_value(s); });
  EXPECT_FALSE(ran.get_future().get()) << "ran, not as a shutdown";
}

}  // namespace
}  // namespace seccomp_agent::plugin
