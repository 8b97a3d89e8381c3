// Benchmark workloads: a child process that runs a tight syscall loop and
// reports ns per call, with or without a seccomp filter.
#ifndef SECCOMP_AGENT_BENCH_WORKLOAD_H_
#define SECCOMP_AGENT_BENCH_WORKLOAD_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/fd.h"

namespace seccomp_agent::bench {

enum class Workload { kGetppid, kOpenat, kMkdir };
const char* WorkloadName(Workload w);
// The syscall the workload traps ("getppid", "openat", "mkdir").
const char* TrappedSyscall(Workload w);

enum class Filter {
  kNone,    // no seccomp at all
  kAllow,   // a filter that allows everything (no notification)
  kNotify,  // the workload's syscall returns SCMP_ACT_NOTIFY
  kDeny,    // the workload's syscall is denied in the filter (SCMP_ACT_ERRNO(EPERM))
  kPtrace,  // no filter: the parent traces with PTRACE_SYSCALL
};

struct ChildOptions {
  Workload workload = Workload::kGetppid;
  Filter filter = Filter::kNone;
  int iterations = 10000;
  int cpu = -1;  // pin the child to this CPU (-1: no pinning)
  // Per-call latencies (ns) are written here when non-null (shared memory of
  // `iterations` int64 slots).
  int64_t* latencies = nullptr;
  std::string scratch_dir = "/tmp";  // openat/mkdir targets
};

// A forked workload. With kNotify the listener is in `listener`.
struct Child {
  pid_t pid = -1;
  UniqueFd listener;
  UniqueFd result;  // read end: the child writes its ns/op (double) here
  UniqueFd go;      // write one byte to start the loop
};

absl::StatusOr<Child> SpawnWorkload(const ChildOptions& opts);
// Starts the loop.
void StartChild(Child& c);
// Waits for the child's result; returns mean ns per iteration.
absl::StatusOr<double> FinishChild(Child& c);
// CPU time (user + system) of this process from the last StartChild to the
// last FinishChild, ns: what serving the loop cost, without the setup and
// teardown around it (a plugin dispatcher's connect and warm-up calls).
double LastLoopCpuNs();

}  // namespace seccomp_agent::bench

#endif  // SECCOMP_AGENT_BENCH_WORKLOAD_H_
