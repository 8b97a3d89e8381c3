#include "agent/engine/rate_limiter.h"

#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

constexpr int64_t kMs = 1'000'000;

TEST(RateLimiter, NoLimitUntilConfigured) {
  RateLimiter l;
  EXPECT_FALSE(l.limited());
  l.Configure(100, 2, 0);
  EXPECT_TRUE(l.limited());
  EXPECT_EQ(l.rate(), 100);
  EXPECT_EQ(l.burst(), 2);
}

TEST(RateLimiter, AdmitsTheBurstThenParksUntilATokenOrTheMinimum) {
  RateLimiter l;
  l.Configure(100, 2, 0);  // one token per 10 ms
  RateLimiter::Settings s;
  s.min_park_ns = 1 * kMs;
  EXPECT_TRUE(l.Admit(0));
  EXPECT_TRUE(l.Admit(0));
  EXPECT_FALSE(l.Admit(0));
  EXPECT_EQ(l.ParkNs(s), 10 * kMs);  // the next token
  s.min_park_ns = 25 * kMs;
  EXPECT_EQ(l.ParkNs(s), 25 * kMs);  // at least the minimum
  EXPECT_TRUE(l.Admit(10 * kMs));
}

TEST(RateLimiter, UnparkReturnsTheParkedTimeOnce) {
  RateLimiter l;
  l.Configure(100, 1, 0);
  EXPECT_EQ(l.Unpark(5 * kMs), 0);  // not parked
  l.Park(10 * kMs, 30 * kMs);
  EXPECT_EQ(l.parked_until_ns(), 30 * kMs);
  EXPECT_EQ(l.Unpark(31 * kMs), 21 * kMs);
  EXPECT_EQ(l.parked_until_ns(), 0);
  EXPECT_EQ(l.Unpark(40 * kMs), 0);
}

}  // namespace
}  // namespace seccomp_agent
