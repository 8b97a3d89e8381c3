// The unpinned tail (issue 19 item 1): a container-like task doing mkdir on
// tmpfs through the engine (path read, glob match, CONTINUE), per-call
// latencies with everything pinned to one CPU and with no pinning, runs
// interleaved in one process so both modes see the same machine load.
#ifndef SECCOMP_AGENT_BENCH_TAIL_BENCH_H_
#define SECCOMP_AGENT_BENCH_TAIL_BENCH_H_

#include "absl/status/statusor.h"

namespace seccomp_agent::bench {

struct TailOptions {
  int runs = 5;             // per mode, interleaved pinned / unpinned
  int iterations = 10000;   // mkdir calls per run
  int workers = 4;          // engine worker threads
  bool sync_wakeup = true;  // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP on the listener
};

// Per-call latency percentiles (ns) over every call of every run of a mode.
struct TailStats {
  double p50 = 0, p99 = 0, mean = 0;
};

struct TailResult {
  TailStats pinned, unpinned;
  TailStats no_seccomp;  // the same loop with no filter, unpinned: the syscall's own cost
};

absl::StatusOr<TailResult> RunMkdirTail(const TailOptions& opts);

}  // namespace seccomp_agent::bench

#endif  // SECCOMP_AGENT_BENCH_TAIL_BENCH_H_
