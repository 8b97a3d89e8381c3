#include "agent/plugin/decision_cache.h"

#include <linux/audit.h>
#include <sys/syscall.h>

#include <cstdlib>

#include "agent/testing/allocations.h"
#include "gtest/gtest.h"

namespace seccomp_agent::plugin {
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

TEST(DecisionCache, PlainDecisionsAreCopiedOutByValue) {
  FakeClock clock;
  DecisionCache c(8, clock.fn());
  c.Put("deny", Deny(13), milliseconds(100));
  v1::Decision redirect;
  (*redirect.mutable_redirect_open()->mutable_exact())["/a"] = "/srv/a";
  c.Put("redirect", redirect, milliseconds(100));
  PlainDecision p;
  ASSERT_TRUE(c.GetPlain("deny", &p));
  EXPECT_EQ(p.kind, PlainDecision::Kind::kDeny);
  EXPECT_EQ(p.errno_code, 13);
  EXPECT_FALSE(c.GetPlain("redirect", &p)) << "not plain: the full decision only";
  std::shared_ptr<const v1::Decision> full;
  EXPECT_TRUE(c.Get("redirect", &full));
  clock.t += milliseconds(100);
  EXPECT_FALSE(c.GetPlain("deny", &p)) << "expired";
}

// What the engine's leader does for a cached answer: the key into a reused
// buffer, the lookup, the re-validation for this syscall.
TEST(DecisionCache, APlainHitAllocatesNothing) {
  DecisionCache c(8, nullptr);
  ContainerInfo info;
  info.id = "a-container-id-longer-than-the-small-string-buffer";
  SyscallEvent ev;
  ev.container = &info;
  ev.arch = AUDIT_ARCH_X86_64;
  ev.nr = SYS_getppid;
  ev.syscall = "getppid";
  const std::string plugin = "a-plugin-name-longer-than-sixteen";
  v1::Decision ret;
  ret.mutable_return_()->set_value(7);
  c.Put(SyscallContainerKey(plugin, ev), ret, milliseconds(60000));
  std::string key;
  FillSyscallContainerKey(&key, plugin, ev);  // the buffer grows once
  const ValidationContext vctx = ContextFor(ev, nullptr);
  PlainDecision p;
  ASSERT_TRUE(c.GetPlain(key, &p) && PlainValid(p, vctx));  // statics made once
  bool hit = false;
  int allocations = -1;
  {
    testing::CountAllocations counted;  // the hit path must make none
    for (int i = 0; i < 100; ++i) {
      FillSyscallContainerKey(&key, plugin, ev);
      hit = c.GetPlain(key, &p) && PlainValid(p, vctx);
    }
    allocations = counted.count();
  }
  EXPECT_TRUE(hit);
  EXPECT_EQ(p.value, 7);
  EXPECT_EQ(allocations, 0);
}

TEST(PlainDecision, ValidatedLikeTheProto) {
  ContainerInfo info;
  SyscallEvent ev;
  ev.container = &info;
  ev.syscall = "write";
  ev.args[2] = 10;
  const ValidationContext w = ContextFor(ev, nullptr);
  using K = PlainDecision::Kind;
  EXPECT_TRUE(PlainValid({K::kReturn, 0, 10}, w));
  EXPECT_FALSE(PlainValid({K::kReturn, 0, 11}, w)) << "more than the write's count";
  EXPECT_FALSE(PlainValid({K::kReturn, 0, -1}, w)) << "an errno";
  EXPECT_FALSE(PlainValid({K::kDeny, 0, 0}, w));
  EXPECT_TRUE(PlainValid({K::kDeny, 13, 0}, w));
  ev.syscall = "openat";
  EXPECT_FALSE(PlainValid({K::kReturn, 0, 3}, ContextFor(ev, nullptr))) << "creates an fd";
}

}  // namespace
}  // namespace seccomp_agent::plugin
