#include "agent/plugin/decision_cache.h"

#include "gtest/gtest.h"

namespace seccomp_agent {
namespace plugin {
namespace {

namespace v1 = ::seccompagent::v1;
using std::chrono::milliseconds;

struct FakeClock {
  MonoClock::time_point t{};
  NowFn fn() {
    return [this] { return t; };
  }
};

v1::Decision Deny(int e) {
  v1::Decision d;
  d.mutable_deny()->set_errno_code(e);
  return d;
}

TEST(DecisionCache, ExpiresOnTheInjectedClock) {
  FakeClock clock;
  DecisionCache c(8, clock.fn());
  c.Put("k", Deny(13), milliseconds(100));
  std::shared_ptr<const v1::Decision> out;
  clock.t += milliseconds(99);
  ASSERT_TRUE(c.Get("k", &out));
  EXPECT_EQ(out->deny().errno_code(), 13);
  clock.t += milliseconds(1);
  EXPECT_FALSE(c.Get("k", &out)) << "expiry is exclusive";
  EXPECT_EQ(c.size(), 0u) << "an expired entry is dropped";
}

TEST(DecisionCache, PutReplacesAndRenewsExpiry) {
  FakeClock clock;
  DecisionCache c(8, clock.fn());
  c.Put("k", Deny(1), milliseconds(10));
  clock.t += milliseconds(5);
  c.Put("k", Deny(2), milliseconds(10));
  clock.t += milliseconds(9);
  std::shared_ptr<const v1::Decision> out;
  ASSERT_TRUE(c.Get("k", &out));
  EXPECT_EQ(out->deny().errno_code(), 2);
  EXPECT_EQ(c.size(), 1u);
}

TEST(DecisionCache, EvictsLeastRecentlyUsed) {
  FakeClock clock;
  DecisionCache c(2, clock.fn());
  c.Put("a", Deny(1), milliseconds(1000));
  c.Put("b", Deny(2), milliseconds(1000));
  std::shared_ptr<const v1::Decision> out;
  ASSERT_TRUE(c.Get("a", &out));  // a is now the most recent
  c.Put("c", Deny(3), milliseconds(1000));
  EXPECT_TRUE(c.Get("a", &out));
  EXPECT_FALSE(c.Get("b", &out)) << "b was the least recently used";
  EXPECT_TRUE(c.Get("c", &out));
}

TEST(DecisionCache, ZeroCapacityStoresNothing) {
  DecisionCache c(0, nullptr);
  c.Put("a", Deny(1), milliseconds(1000));
  std::shared_ptr<const v1::Decision> out;
  EXPECT_FALSE(c.Get("a", &out));
}

}  // namespace
}  // namespace plugin
}  // namespace seccomp_agent
