// The per-container rate limit (EngineOptions::container_rate): the token
// bucket's arithmetic, and the engine against the real kernel with real
// listeners from TrappedChild: delay mode holds calls back but never fails
// one, deny mode answers the errno, a parked listener is re-armed after the
// refill, and a container removed or killed while parked is let go at once.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>

#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/engine/decision_log.h"
#include "agent/engine/engine.h"
#include "agent/engine/token_bucket.h"
#include "agent/policy/policy.h"
#include "agent/seccomp/unotify.h"
#include "agent/testing/trapped_child.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "agent/testing/wait.h"

namespace seccomp_agent {
namespace {

using testing::WaitFor;

using testing::TrappedChild;
using Clock = std::chrono::steady_clock;

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSec = 1'000'000'000;

// getppid is answered by the agent with 4242: a caller can tell the agent's
// answer from the kernel's (ENOSYS once no agent listens) or a denial.
constexpr char kPolicy[] = R"(
version: 1
default_action: {allow: {}}
rules:
  - name: spoof-ppid
    match: {syscalls: [getppid]}
    action: {return: {value: 4242}}
)";

TEST(TokenBucketTest, StartsFullThenRefillsAtRateUpToBurst) {
  TokenBucket b(/*rate=*/100, /*burst=*/3, /*now_ns=*/0);
  EXPECT_TRUE(b.Take(0));
  EXPECT_TRUE(b.Take(0));
  EXPECT_TRUE(b.Take(0));
  EXPECT_FALSE(b.Take(0));
  EXPECT_EQ(b.NsUntilToken(), 10 * kMs);  // one token per 10 ms
  EXPECT_FALSE(b.Take(9 * kMs));
  EXPECT_EQ(b.NsUntilToken(), 1 * kMs);
  EXPECT_TRUE(b.Take(10 * kMs));
  EXPECT_FALSE(b.Take(10 * kMs));
  // A long pause refills to the burst, not beyond.
  EXPECT_TRUE(b.Take(10 * kSec));
  EXPECT_TRUE(b.Take(10 * kSec));
  EXPECT_TRUE(b.Take(10 * kSec));
  EXPECT_FALSE(b.Take(10 * kSec));
  // A clock that goes backwards (it never should) takes nothing away.
  EXPECT_FALSE(b.Take(5 * kSec));
  EXPECT_TRUE(b.Take(10 * kSec + 10 * kMs));
}

TEST(TokenBucketTest, LongRunAverageIsTheRate) {
  TokenBucket b(/*rate=*/1000, /*burst=*/10, 0);
  int taken = 0;
  for (int64_t t = 0; t <= 2 * kSec; t += 10'000) taken += b.Take(t) ? 1 : 0;  // 100 us steps
  EXPECT_GE(taken, 2000);
  EXPECT_LE(taken, 2000 + 10 + 1);
}

TEST(TokenBucketTest, FractionalRate) {
  TokenBucket b(/*rate=*/0.5, /*burst=*/1, 0);
  EXPECT_TRUE(b.Take(0));
  EXPECT_FALSE(b.Take(1 * kSec));
  EXPECT_EQ(b.NsUntilToken(), 1 * kSec);
  EXPECT_TRUE(b.Take(2 * kSec));
}

ContainerInfo Info(const std::string& id, pid_t pid) {
  ContainerInfo c;
  c.id = id;
  c.init_pid = pid;
  c.runtime = "test";
  return c;
}

int64_t MsSince(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

class EngineRateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/engine-rate-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto dl = DecisionLog::Open(dir_ + "/decisions.jsonl");
    ASSERT_TRUE(dl.ok()) << dl.status();
    log_ = std::move(*dl);
  }
  void TearDown() override {
    engine_.reset();
    log_.reset();
    std::system(("rm -rf " + dir_).c_str());
  }
  void StartEngine(const EngineOptions& o) {
    auto p = CompiledPolicy::LoadString(kPolicy, "rate_test.yaml");
    ASSERT_TRUE(p.ok()) << p.status();
    engine_ = std::make_unique<Engine>(o, DefaultUnotify(), *p, log_.get());
    ASSERT_TRUE(engine_->Start().ok());
  }
  static EngineOptions Limited(double rate, double burst, RateLimitAction action) {
    EngineOptions o;
    o.workers = 4;
    o.container_rate = rate;
    o.container_burst = burst;
    o.rate_limit_action = action;
    return o;
  }
  ContainerSnapshot Snapshot(const std::string& id) {
    for (const auto& c : engine_->Containers()) {
      if (c.info.id == id) return c;
    }
    ADD_FAILURE() << "no container " << id;
    return ContainerSnapshot{};
  }
  std::vector<nlohmann::json> Decisions() {
    std::ifstream in(dir_ + "/decisions.jsonl");
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  std::string dir_;
  std::unique_ptr<DecisionLog> log_;
  std::unique_ptr<Engine> engine_;
};

// Returns 0 when all `n` getppid calls were answered 4242 by the agent.
int SpoofedCalls(int n) {
  for (int i = 0; i < n; ++i) {
    if (syscall(SYS_getppid) != 4242) return 1;
  }
  return 0;
}

// A child whose body reports its result through a pipe and then stays
// alive, so its container stays registered and its counters readable until
// the child is killed (TrappedChild's destructor does that).
class HeldChild {
 public:
  static HeldChild Spawn(std::function<int()> body) {
    HeldChild h;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return h;
    h.rd_.reset(p[0]);
    UniqueFd wr(p[1]);
    int w = wr.get();
    auto c = TrappedChild::Spawn({"getppid"}, [w, body] {
      unsigned char r = static_cast<unsigned char>(body());
      if (write(w, &r, 1) != 1) return 99;
      for (;;) pause();
    });
    if (c.ok()) h.child_.emplace(std::move(*c));
    return h;
  }
  bool ok() const { return child_.has_value() && rd_; }
  TrappedChild& child() { return *child_; }
  // The body's return value, or -1 if the child died first.
  int Result() {
    unsigned char r;
    return read(rd_.get(), &r, 1) == 1 ? r : -1;
  }

 private:
  UniqueFd rd_;
  std::optional<TrappedChild> child_;
};

TEST_F(EngineRateTest, DelayHoldsToTheRateAndNeverFailsACall) {
  // 20 at once, then 200/s: 120 calls need at least (120 - 20) / 200 = 0.5 s.
  StartEngine(Limited(200, 20, RateLimitAction::kDelay));
  HeldChild h = HeldChild::Spawn([] { return SpoofedCalls(120); });
  ASSERT_TRUE(h.ok());
  TrappedChild& child = h.child();
  ASSERT_TRUE(engine_->AddContainer(Info("flood", child.pid()), child.TakeListener()).ok());
  auto t0 = Clock::now();
  child.Start();
  EXPECT_EQ(h.Result(), 0) << "a call was not answered 4242 (delay must not fail calls)";
  const int64_t ms = MsSince(t0);
  EXPECT_GE(ms, 480) << "faster than 200/s after a burst of 20";
  EXPECT_LT(ms, 1500) << "much slower than the rate allows";
  ContainerSnapshot s = Snapshot("flood");
  EXPECT_EQ(s.notifications, 120u);
  EXPECT_EQ(s.returned, 120u);
  EXPECT_EQ(s.denied, 0u);
  EXPECT_GT(s.rate_limited, 0u);
  EXPECT_GT(s.throttled_ns, 300u * kMs);
  EXPECT_EQ(s.rate, 200);
  EXPECT_EQ(s.burst, 20);
  EXPECT_EQ(engine_->rate_limited_total(), s.rate_limited);
}

TEST_F(EngineRateTest, ParkedListenerIsReArmedAfterEachRefill) {
  // Burst 1 at 25/s: every call after the first waits for a refill (~40 ms),
  // so each one needs the timer to re-arm the listener.
  StartEngine(Limited(25, 1, RateLimitAction::kDelay));
  HeldChild h = HeldChild::Spawn([] { return SpoofedCalls(6); });
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(
      engine_->AddContainer(Info("slowly", h.child().pid()), h.child().TakeListener()).ok());
  auto t0 = Clock::now();
  h.child().Start();
  EXPECT_EQ(h.Result(), 0);
  const int64_t ms = MsSince(t0);
  EXPECT_GE(ms, 5 * 40 - 10);
  EXPECT_LT(ms, 1000);
  EXPECT_GE(Snapshot("slowly").rate_limited, 5u);
}

TEST_F(EngineRateTest, DenyAnswersTheErrnoWithoutThePolicy) {
  EngineOptions o = Limited(1, 5, RateLimitAction::kDeny);
  o.rate_limit_errno = EBUSY;
  StartEngine(o);
  // 5 served by the policy (the burst), then EBUSY; no call waits.
  HeldChild h = HeldChild::Spawn([] {
    int ok = 0;
    for (int i = 0; i < 30; ++i) {
      long r = syscall(SYS_getppid);
      if (r == 4242) {
        ++ok;
      } else if (r != -1 || errno != EBUSY) {
        return 100;
      }
    }
    return ok;
  });
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(
      engine_->AddContainer(Info("denied", h.child().pid()), h.child().TakeListener()).ok());
  auto t0 = Clock::now();
  h.child().Start();
  const int ok = h.Result();
  EXPECT_LT(MsSince(t0), 500) << "deny mode must not hold calls back";
  EXPECT_GE(ok, 5);
  EXPECT_LE(ok, 6);  // at 1/s, at most one refill during the run
  // The counters move right after each reply: wait for the last one.
  ASSERT_TRUE(WaitFor([&] { return Snapshot("denied").notifications == 30; }));
  ASSERT_TRUE(WaitFor([&] { return Snapshot("denied").rate_limited == 30u - ok; }));
  ContainerSnapshot s = Snapshot("denied");
  EXPECT_EQ(s.rate_limited, static_cast<uint64_t>(30 - ok));
  EXPECT_EQ(s.denied, static_cast<uint64_t>(30 - ok));
  EXPECT_EQ(s.throttled_ns, 0u);
  ASSERT_TRUE(WaitFor([&] { return Decisions().size() == 30; })) << Decisions().size();
  auto d = Decisions();
  EXPECT_EQ(d.back()["rule"], "rate-limit");
  EXPECT_EQ(d.back()["action"], "deny");
  EXPECT_EQ(d.back()["result"], "EBUSY");
  EXPECT_EQ(d.front()["rule"], "spoof-ppid");
}

TEST_F(EngineRateTest, RemovedWhileParkedLetsGoOfTheListenerAtOnce) {
  // Burst 1 at 0.2/s: the second call would wait ~5 s for its token.
  StartEngine(Limited(0.2, 1, RateLimitAction::kDelay));
  auto child = TrappedChild::Spawn({"getppid"}, [] {
    if (syscall(SYS_getppid) != 4242) return 1;
    // Parked; the agent drops the container: the kernel answers ENOSYS.
    if (syscall(SYS_getppid) != -1 || errno != ENOSYS) return 2;
    return 0;
  });
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE(engine_->AddContainer(Info("parked", child->pid()), child->TakeListener()).ok());
  child->Start();
  ASSERT_TRUE(WaitFor([&] { return Snapshot("parked").rate_limited == 1; }));
  auto t0 = Clock::now();
  EXPECT_EQ(engine_->RemoveContainer("parked", "test"), 1);
  EXPECT_EQ(child->Wait(), 0);
  // Not held until the park would have ended: the timer entry (and its
  // reference to the listener) went with the container.
  EXPECT_LT(MsSince(t0), 2000);
  EXPECT_EQ(engine_->container_count(), 0u);
  // The engine still works, and a later timer tick finds nothing to re-arm.
  auto other = TrappedChild::Spawn({"getppid"}, [] { return SpoofedCalls(1); });
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(engine_->AddContainer(Info("next", other->pid()), other->TakeListener()).ok());
  other->Start();
  EXPECT_EQ(other->Wait(), 0);
}

TEST_F(EngineRateTest, KilledWhileParkedIsRemoved) {
  StartEngine(Limited(0.2, 1, RateLimitAction::kDelay));
  auto child = TrappedChild::Spawn({"getppid"}, [] { return SpoofedCalls(3); });
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE(engine_->AddContainer(Info("killed", child->pid()), child->TakeListener()).ok());
  child->Start();
  ASSERT_TRUE(WaitFor([&] { return Snapshot("killed").rate_limited == 1; }));
  kill(child->pid(), SIGKILL);
  EXPECT_EQ(child->Wait(), 128 + SIGKILL);
  EXPECT_TRUE(WaitFor([&] { return engine_->container_count() == 0; }));
}

TEST_F(EngineRateTest, AnnotationLowersTheLimitForOneContainerOnly) {
  EngineOptions o;  // no global limit
  o.workers = 4;
  StartEngine(o);
  auto limited = TrappedChild::Spawn({"getppid"}, [] { return SpoofedCalls(40); });
  HeldChild free = HeldChild::Spawn([] { return SpoofedCalls(300); });
  ASSERT_TRUE(limited.ok() && free.ok());
  ContainerInfo li = Info("annotated", limited->pid());
  li.annotations[kRateAnnotation] = "10";
  li.annotations[kBurstAnnotation] = "2";
  ASSERT_TRUE(engine_->AddContainer(li, limited->TakeListener()).ok());
  ASSERT_TRUE(
      engine_->AddContainer(Info("free", free.child().pid()), free.child().TakeListener()).ok());
  limited->Start();
  ASSERT_TRUE(WaitFor([&] { return Snapshot("annotated").rate_limited > 0; }));
  auto t0 = Clock::now();
  free.child().Start();
  EXPECT_EQ(free.Result(), 0);
  EXPECT_LT(MsSince(t0), 1000) << "the unlimited container waited behind a throttled one";
  ContainerSnapshot s = Snapshot("annotated");
  EXPECT_EQ(s.rate, 10);
  EXPECT_EQ(s.burst, 2);
  EXPECT_LT(s.notifications, 40u) << "not throttled";
  EXPECT_EQ(Snapshot("free").rate, 0);
  EXPECT_EQ(Snapshot("free").rate_limited, 0u);
  kill(limited->pid(), SIGKILL);
  limited->Wait();
}

TEST_F(EngineRateTest, AnnotationCannotRaiseTheLimit) {
  StartEngine(Limited(100, 10, RateLimitAction::kDelay));
  auto a = TrappedChild::Spawn({"getppid"}, [] { return SpoofedCalls(1); });
  auto b = TrappedChild::Spawn({"getppid"}, [] { return SpoofedCalls(1); });
  auto c = TrappedChild::Spawn({"getppid"}, [] { return SpoofedCalls(1); });
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ContainerInfo ai = Info("raise", a->pid());
  ai.annotations[kRateAnnotation] = "100000";
  ai.annotations[kBurstAnnotation] = "100000";
  ContainerInfo bi = Info("bogus", b->pid());
  bi.annotations[kRateAnnotation] = "-5";  // ignored with a warning
  ContainerInfo ci = Info("lower", c->pid());
  ci.annotations[kRateAnnotation] = "2.5";
  ASSERT_TRUE(engine_->AddContainer(ai, a->TakeListener()).ok());
  ASSERT_TRUE(engine_->AddContainer(bi, b->TakeListener()).ok());
  ASSERT_TRUE(engine_->AddContainer(ci, c->TakeListener()).ok());
  EXPECT_EQ(Snapshot("raise").rate, 100);
  EXPECT_EQ(Snapshot("raise").burst, 10);
  EXPECT_EQ(Snapshot("bogus").rate, 100);
  EXPECT_EQ(Snapshot("lower").rate, 2.5);
  EXPECT_EQ(Snapshot("lower").burst, 10);
  for (auto* ch : {&*a, &*b, &*c}) {
    ch->Start();
    EXPECT_EQ(ch->Wait(), 0);
  }
}

TEST_F(EngineRateTest, StopWhileParkedDoesNotHang) {
  StartEngine(Limited(0.2, 1, RateLimitAction::kDelay));
  auto child = TrappedChild::Spawn({"getppid"}, [] {
    if (syscall(SYS_getppid) != 4242) return 1;
    return (syscall(SYS_getppid) == -1 && errno == ENOSYS) ? 0 : 2;
  });
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE(engine_->AddContainer(Info("stop", child->pid()), child->TakeListener()).ok());
  child->Start();
  ASSERT_TRUE(WaitFor([&] { return Snapshot("stop").rate_limited == 1; }));
  auto t0 = Clock::now();
  engine_->Stop();
  EXPECT_EQ(child->Wait(), 0);
  EXPECT_LT(MsSince(t0), 2000);
}

}  // namespace
}  // namespace seccomp_agent
