// The workload of integration:fairness_e2e_test, run inside a busybox
// container (static, libc only). The container traps getppid to the agent,
// whose test policy answers 4242; any other answer counts as "bad".
//
//   fairness_probe flood THREADS DIR
//     THREADS threads call getppid back to back while DIR/run exists (and
//     idle while it does not) until DIR/stop exists. Every 2 ms DIR/count
//     is replaced with "<calls> <bad>\n" (totals so far).
//   fairness_probe measure DIR CALLS GAP_US
//     For round r = 0, 1, ...: waits for DIR/go.<r> (or DIR/stop: exit),
//     makes CALLS getppid calls GAP_US apart, timing each one from this side
//     (CLOCK_MONOTONIC around the syscall), and prints one line
//       round <r> calls=<n> bad=<b> p50=<ns> p90=<ns> p99=<ns> max=<ns> lat=<ns>,<ns>,...
//     (lat: every call's latency, in call order).
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr long kSpoofed = 4242;

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void SleepUs(long us) {
  timespec ts{us / 1'000'000, (us % 1'000'000) * 1000};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

int Flood(int threads, const std::string& dir) {
  std::atomic<uint64_t> calls{0}, bad{0};
  std::atomic<bool> stop{false}, run{false};
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        if (!run.load(std::memory_order_relaxed)) {
          SleepUs(1000);
          continue;
        }
        if (syscall(SYS_getppid) != kSpoofed) bad.fetch_add(1, std::memory_order_relaxed);
        calls.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  const std::string count = dir + "/count", tmp = dir + "/count.tmp";
  for (;;) {
    run.store(Exists(dir + "/run"));
    const bool done = Exists(dir + "/stop");
    if (FILE* f = fopen(tmp.c_str(), "w")) {
      fprintf(f, "%llu %llu\n", static_cast<unsigned long long>(calls.load()),
              static_cast<unsigned long long>(bad.load()));
      fclose(f);
      rename(tmp.c_str(), count.c_str());
    }
    if (done) break;
    SleepUs(2000);
  }
  stop = true;
  for (auto& t : ts) t.join();
  printf("flood calls=%llu bad=%llu\n", static_cast<unsigned long long>(calls.load()),
         static_cast<unsigned long long>(bad.load()));
  return 0;
}

int Measure(const std::string& dir, int calls, long gap_us) {
  std::vector<int64_t> lat(calls);
  for (int round = 0;; ++round) {
    const std::string go = dir + "/go." + std::to_string(round);
    while (!Exists(go)) {
      if (Exists(dir + "/stop")) return 0;
      SleepUs(1000);
    }
    int bad = 0;
    for (int i = 0; i < calls; ++i) {
      SleepUs(gap_us);
      const int64_t t0 = NowNs();
      const long r = syscall(SYS_getppid);
      lat[i] = NowNs() - t0;
      if (r != kSpoofed) ++bad;
    }
    std::vector<int64_t> s = lat;
    std::sort(s.begin(), s.end());
    auto pct = [&](int p) { return s[std::max(0, (calls * p + 99) / 100 - 1)]; };
    printf("round %d calls=%d bad=%d p50=%lld p90=%lld p99=%lld max=%lld lat=", round, calls, bad,
           static_cast<long long>(pct(50)), static_cast<long long>(pct(90)),
           static_cast<long long>(pct(99)), static_cast<long long>(s.back()));
    for (int i = 0; i < calls; ++i) printf(i ? ",%lld" : "%lld", static_cast<long long>(lat[i]));
    printf("\n");
    fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "flood") == 0) return Flood(atoi(argv[2]), argv[3]);
  if (argc == 5 && strcmp(argv[1], "measure") == 0) {
    return Measure(argv[2], atoi(argv[3]), atol(argv[4]));
  }
  fprintf(stderr, "usage: fairness_probe flood THREADS DIR | measure DIR CALLS GAP_US\n");
  return 2;
}
