// DecisionMetrics: caps, grace period, concurrency and the no-allocation
// hot path.
#include "agent/metrics/decision_metrics.h"

#include <linux/audit.h>
#include <sys/syscall.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

#include "agent/metrics/exposition_parser.h"
#include "gtest/gtest.h"

// Counts allocations on the calling thread while armed.
namespace {
thread_local bool t_counting = false;
thread_local long t_allocs = 0;
}  // namespace

void* operator new(size_t n) {
  if (t_counting) ++t_allocs;
  void* p = malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { free(p); }
void operator delete(void* p, size_t) noexcept { free(p); }

namespace seccomp_agent::metrics {
namespace {

DecisionRecord Rec(const SyscallEvent* ev, const std::string& action) {
  DecisionRecord r;
  r.event = ev;
  r.action = action;
  r.latency_ns = 2000;
  return r;
}

SyscallEvent Ev(const ContainerInfo* c, int nr, uint32_t arch = AUDIT_ARCH_X86_64) {
  SyscallEvent ev;
  ev.container = c;
  ev.arch = arch;
  ev.nr = nr;
  return ev;
}

Exposition Collect(DecisionMetrics& dm) {
  std::string out;
  dm.Collect(&out);
  auto e = ParseExposition(out);
  EXPECT_TRUE(e.ok()) << e.status() << "\n" << out;
  return e.ok() ? *e : Exposition{};
}

double Notifs(const Exposition& e, const std::string& id, const std::string& syscall,
              const std::string& action) {
  auto v = e.Value("seccomp_agent_notifications_total", {{"container_id", id},
                                                         {"namespace", ""},
                                                         {"pod", ""},
                                                         {"container", ""},
                                                         {"syscall", syscall},
                                                         {"action", action}});
  return v.ok() ? *v : -1;
}

TEST(DecisionMetricsTest, NoAllocationOnTheHotPath) {
  DecisionMetrics dm;
  ContainerInfo c;
  c.id = "c";
  dm.OnContainerAdded(c);
  SyscallEvent ev = Ev(&c, SYS_mkdir);
  DecisionRecord deny = Rec(&ev, "deny");
  DecisionRecord subst = Rec(&ev, "redirect_open");
  subst.backend = "kernel";
  dm.OnDecision(deny);  // warm: interns names, claims the slot, fills the cache
  dm.OnDecision(subst);
  t_allocs = 0;
  t_counting = true;
  for (int i = 0; i < 10000; ++i) {
    dm.OnDecision(deny);
    dm.OnDecision(subst);
  }
  t_counting = false;
  EXPECT_EQ(t_allocs, 0);
  // And the counter works (so the loop above was not a no-op).
  Exposition e = Collect(dm);
  EXPECT_EQ(Notifs(e, "c", "mkdir", "deny"), 10001);
  EXPECT_EQ(Notifs(e, "c", "mkdir", "redirect_open"), 10001);
}

TEST(DecisionMetricsTest, GlobalSeriesCapSpillsIntoUnattributed) {
  DecisionMetrics::Options o;
  o.max_series = 10;
  DecisionMetrics dm(o);
  std::vector<ContainerInfo> cs(4);
  for (size_t i = 0; i < cs.size(); ++i) {
    cs[i].id = "c" + std::to_string(i);
    dm.OnContainerAdded(cs[i]);
  }
  // 4 containers x 4 syscalls = 16 wanted series; 10 allowed.
  for (auto& c : cs) {
    for (int nr : {SYS_mkdir, SYS_openat, SYS_unlink, SYS_bind}) {
      SyscallEvent ev = Ev(&c, nr);
      dm.OnDecision(Rec(&ev, "deny"));
    }
  }
  EXPECT_EQ(dm.series_count(), 10u);
  Exposition e = Collect(dm);
  EXPECT_EQ(e.families.at("seccomp_agent_notifications_total").samples.size(), 10u);
  EXPECT_EQ(*e.Value("seccomp_agent_notifications_unattributed_total", {{"action", "deny"}}), 6);
  EXPECT_EQ(*e.Value("seccomp_agent_notification_series_limit_hits_total"), 6);
  // An existing series keeps counting at the cap.
  SyscallEvent ev = Ev(&cs[0], SYS_mkdir);
  dm.OnDecision(Rec(&ev, "deny"));
  e = Collect(dm);
  EXPECT_EQ(Notifs(e, "c0", "mkdir", "deny"), 2);
}

TEST(DecisionMetricsTest, PerContainerCap) {
  DecisionMetrics dm;
  ContainerInfo c;
  c.id = "noisy";
  dm.OnContainerAdded(c);
  for (int nr = 0; nr < 300; ++nr) {
    SyscallEvent ev = Ev(&c, nr);
    dm.OnDecision(Rec(&ev, "allow"));
  }
  EXPECT_EQ(dm.series_count(), static_cast<size_t>(DecisionMetrics::kMaxSeriesPerContainer));
  Exposition e = Collect(dm);
  EXPECT_EQ(*e.Value("seccomp_agent_notifications_unattributed_total", {{"action", "allow"}}),
            300 - DecisionMetrics::kMaxSeriesPerContainer);
}

TEST(DecisionMetricsTest, RemovedContainersDroppedAfterGrace) {
  DecisionMetrics::Options o;
  o.removed_grace = absl::Minutes(5);
  DecisionMetrics dm(o);
  ContainerInfo a, b;
  a.id = "a";
  b.id = "b";
  dm.OnContainerAdded(a);
  dm.OnContainerAdded(b);
  SyscallEvent ea = Ev(&a, SYS_mkdir), eb = Ev(&b, SYS_mkdir);
  dm.OnDecision(Rec(&ea, "deny"));
  dm.OnDecision(Rec(&eb, "deny"));
  dm.OnContainerRemoved(a, "exited");
  // A late decision for a removed container (a substitution finishing) still
  // counts while in grace.
  dm.OnDecision(Rec(&ea, "deny"));
  dm.SweepForTest(absl::Now() + absl::Minutes(1));
  Exposition e = Collect(dm);
  EXPECT_EQ(Notifs(e, "a", "mkdir", "deny"), 2);
  dm.SweepForTest(absl::Now() + absl::Minutes(6));
  EXPECT_EQ(dm.series_count(), 1u);
  e = Collect(dm);
  EXPECT_EQ(Notifs(e, "a", "mkdir", "deny"), -1);  // gone
  EXPECT_EQ(Notifs(e, "b", "mkdir", "deny"), 1);
  // The budget came back and b still counts (its cache entry survived the
  // generation change).
  dm.OnDecision(Rec(&eb, "deny"));
  e = Collect(dm);
  EXPECT_EQ(Notifs(e, "b", "mkdir", "deny"), 2);
}

TEST(DecisionMetricsTest, SameIdTwiceIsOneSeriesAndArchesMerge) {
  DecisionMetrics dm;
  ContainerInfo a1, a2;
  a1.id = a2.id = "same";
  dm.OnContainerAdded(a1);
  dm.OnContainerAdded(a2);
  SyscallEvent e1 = Ev(&a1, SYS_getpid), e2 = Ev(&a2, SYS_getpid);
  SyscallEvent i386 = Ev(&a1, 20, AUDIT_ARCH_I386);  // getpid on i386
  dm.OnDecision(Rec(&e1, "allow"));
  dm.OnDecision(Rec(&e2, "allow"));
  dm.OnDecision(Rec(&i386, "allow"));
  Exposition e = Collect(dm);  // the parser rejects duplicate series
  EXPECT_EQ(Notifs(e, "same", "getpid", "allow"), 3);
}

TEST(DecisionMetricsTest, DecisionBeforeAddIsCountedAndConfirmed) {
  DecisionMetrics dm;
  ContainerInfo c;
  c.id = "early";
  SyscallEvent ev = Ev(&c, SYS_mkdir);
  dm.OnDecision(Rec(&ev, "deny"));  // engine armed the listener first
  dm.OnContainerAdded(c);
  dm.OnDecision(Rec(&ev, "deny"));
  dm.SweepForTest(absl::Now() + absl::Hours(1));  // confirmed: not swept
  Exposition e = Collect(dm);
  EXPECT_EQ(Notifs(e, "early", "mkdir", "deny"), 2);
  EXPECT_EQ(*e.Value("seccomp_agent_active_containers"), 1);
}

TEST(DecisionMetricsTest, ConcurrentWorkersLoseNothing) {
  DecisionMetrics dm;
  std::vector<ContainerInfo> cs(8);
  for (size_t i = 0; i < cs.size(); ++i) {
    cs[i].id = "c" + std::to_string(i);
    dm.OnContainerAdded(cs[i]);
  }
  constexpr int kThreads = 4, kIters = 50000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        SyscallEvent ev = Ev(&cs[(i + t) % cs.size()], i % 2 ? SYS_mkdir : SYS_openat);
        DecisionRecord r = Rec(&ev, i % 3 ? "allow" : "deny");
        r.latency_ns = i;
        dm.OnDecision(r);
      }
    });
  }
  // Scrape while they run: must always parse.
  for (int i = 0; i < 20; ++i) Collect(dm);
  for (auto& t : ts) t.join();
  Exposition e = Collect(dm);
  double total = 0;
  for (const Sample& s : e.families.at("seccomp_agent_notifications_total").samples)
    total += s.value;
  EXPECT_EQ(total, kThreads * kIters);
  EXPECT_EQ(*e.Value("seccomp_agent_decision_latency_seconds_count"), kThreads * kIters);
}

}  // namespace
}  // namespace seccomp_agent::metrics
