// Micro-benchmark of DecisionMetrics::OnDecision, the cost the engine pays
// per decision. Prints ns/decision for 1 thread and for N threads (each on
// its own containers, and all on one container).
//   bazel run -c opt //agent/metrics:decision_metrics_bench
#include <linux/audit.h>
#include <sys/syscall.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <thread>
#include <vector>

#include "agent/metrics/decision_metrics.h"

using seccomp_agent::ContainerInfo;
using seccomp_agent::DecisionRecord;
using seccomp_agent::SyscallEvent;
using seccomp_agent::metrics::DecisionMetrics;

namespace {

int64_t ThreadCpuNs() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

struct Result {
  double wall_ns;  // wall time per decision per thread
  double cpu_ns;   // thread CPU time per decision (robust on a loaded host)
};

Result Run(DecisionMetrics& dm, std::vector<ContainerInfo>& cs, int threads, bool shared,
           int iters) {
  std::vector<std::thread> ts;
  std::atomic<int64_t> cpu{0};
  auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      const char* actions[] = {"allow", "deny", "allow", "return"};
      const int nrs[] = {SYS_mkdir, SYS_openat, SYS_getppid, SYS_unlink, SYS_bind};
      std::vector<SyscallEvent> evs;
      for (int k = 0; k < 20; ++k) {
        SyscallEvent ev;
        ev.container = &cs[shared ? 0 : (t * 4 + k % 4) % cs.size()];
        ev.arch = AUDIT_ARCH_X86_64;
        ev.nr = nrs[k % 5];
        evs.push_back(ev);
      }
      std::vector<DecisionRecord> recs(20);
      for (int k = 0; k < 20; ++k) {
        recs[k].event = &evs[k];
        recs[k].action = actions[k % 4];
        recs[k].result = "continue";
        recs[k].latency_ns = 3000 + k * 997;
      }
      int64_t c0 = ThreadCpuNs();
      for (int i = 0; i < iters; ++i) dm.OnDecision(recs[i % 20]);
      cpu += ThreadCpuNs() - c0;
    });
  }
  for (auto& t : ts) t.join();
  auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  return {ns / iters, static_cast<double>(cpu.load()) / (static_cast<double>(iters) * threads)};
}

}  // namespace

int main(int argc, char** argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 5000000;
  DecisionMetrics dm;
  std::vector<ContainerInfo> cs(16);
  for (size_t i = 0; i < cs.size(); ++i) {
    cs[i].id = "container-" + std::to_string(i);
    dm.OnContainerAdded(cs[i]);
  }
  Run(dm, cs, 1, false, iters / 10);  // warm up
  unsigned n = std::max(2u, std::thread::hardware_concurrency());
  auto print = [](const char* what, Result r) {
    printf("%-40s wall %6.1f ns/decision/thread, cpu %6.1f ns/decision\n", what, r.wall_ns,
           r.cpu_ns);
  };
  print("OnDecision, 1 thread:", Run(dm, cs, 1, false, iters));
  print("OnDecision, N threads, own containers:", Run(dm, cs, n, false, iters));
  print("OnDecision, N threads, one container:", Run(dm, cs, n, true, iters));
  printf("(N = %u)\n", n);
  std::string out;
  dm.Collect(&out);
  printf("exposition: %zu bytes, %zu series\n", out.size(), dm.series_count());
  return 0;
}
