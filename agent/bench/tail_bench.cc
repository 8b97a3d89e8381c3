#include "agent/bench/tail_bench.h"

#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/bench/workload.h"
#include "agent/common/status.h"
#include "agent/engine/engine.h"
#include "agent/policy/policy.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent::bench {
namespace {

// mkdir under the scratch tmpfs is allowed by a path rule (the engine reads
// and resolves the path, then matches the glob); anything else is denied.
std::string TailPolicyText(const std::string& dir) {
  return absl::StrCat(R"(
version: 1
default_action: {deny: {errno: EPERM}}
rules:
  - name: tail-mkdir-tmpfs
    match: {syscalls: [mkdir], args: {path: ")",
                      dir, R"(/**"}}
    action: {allow: {}}
)");
}

// The calling thread's affinity: CPU `cpu`, or every CPU for -1. Threads it
// creates afterwards (the engine's) inherit it.
void PinThread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu >= 0) {
    CPU_SET(cpu, &set);
  } else {
    for (int i = 0; i < CPU_SETSIZE; ++i) CPU_SET(i, &set);
  }
  sched_setaffinity(0, sizeof(set), &set);
}

// Shared memory for one run's per-call latencies (the workload writes them).
class LatencyBuffer {
 public:
  explicit LatencyBuffer(size_t n) : n_(n) {
    void* p = mmap(nullptr, n * sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<int64_t*>(p);
  }
  ~LatencyBuffer() {
    if (data_ != nullptr) munmap(data_, n_ * sizeof(int64_t));
  }
  int64_t* data() { return data_; }
  size_t size() const { return n_; }

 private:
  size_t n_;
  int64_t* data_;
};

// One run: a fresh workload and a fresh engine, both on `cpu` (-1: no
// pinning). Appends the run's per-call latencies to `out`.
absl::Status OneRun(const TailOptions& t, const std::string& dir,
                    const std::shared_ptr<const CompiledPolicy>& policy, int cpu, bool filter,
                    std::vector<double>& out) {
  LatencyBuffer lat(static_cast<size_t>(t.iterations));
  if (lat.data() == nullptr) return ErrnoStatus(errno, "mmap");
  ChildOptions o;
  o.workload = Workload::kMkdir;
  o.filter = filter ? Filter::kNotify : Filter::kNone;
  o.iterations = t.iterations;
  o.cpu = cpu;
  o.latencies = lat.data();
  o.scratch_dir = dir;
  PinThread(cpu);
  SA_ASSIGN_OR_RETURN(Child c, SpawnWorkload(o));
  absl::StatusOr<double> ns;
  if (filter) {
    EngineOptions eo;
    eo.workers = t.workers;
    eo.sync_wakeup = t.sync_wakeup;
    Engine engine(eo, DefaultUnotify(), policy, nullptr);
    SA_RETURN_IF_ERROR(engine.Start());
    ContainerInfo info;
    info.id = "tail-mkdir";
    info.init_pid = c.pid;
    SA_RETURN_IF_ERROR(engine.AddContainer(info, std::move(c.listener)));
    StartChild(c);
    ns = FinishChild(c);
  } else {
    StartChild(c);
    ns = FinishChild(c);
  }
  PinThread(-1);
  if (!ns.ok()) return ns.status();
  out.insert(out.end(), lat.data(), lat.data() + lat.size());
  return absl::OkStatus();
}

TailStats Stats(std::vector<double> v) {
  TailStats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.p50 = v[v.size() / 2];
  s.p99 = v[std::min(v.size() - 1, static_cast<size_t>(v.size() * 0.99))];
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

}  // namespace

absl::StatusOr<TailResult> RunMkdirTail(const TailOptions& t) {
  char tmpl[] = "/dev/shm/seccomp-bench-tail-XXXXXX";  // tmpfs
  if (mkdtemp(tmpl) == nullptr) return ErrnoStatus(errno, "mkdtemp /dev/shm");
  const std::string dir = tmpl;
  absl::StatusOr<std::shared_ptr<const CompiledPolicy>> policy =
      CompiledPolicy::LoadString(TailPolicyText(dir), "tail.yaml");
  std::vector<double> pinned, unpinned, plain;
  absl::Status st = policy.status();
  for (int r = 0; st.ok() && r < t.runs; ++r) {
    st = OneRun(t, dir, *policy, /*cpu=*/0, /*filter=*/true, pinned);
    // The first call created the directory: proof that the rule allowed it
    // (a deny would make every call a cheap EPERM and the figures moot).
    if (st.ok() && r == 0 && access(absl::StrCat(dir, "/bench-mkdir").c_str(), F_OK) != 0) {
      st = absl::InternalError("the tmpfs path rule did not allow mkdir");
    }
    if (st.ok()) st = OneRun(t, dir, *policy, /*cpu=*/-1, /*filter=*/true, unpinned);
    if (st.ok()) st = OneRun(t, dir, *policy, /*cpu=*/-1, /*filter=*/false, plain);
  }
  rmdir(absl::StrCat(dir, "/bench-mkdir").c_str());
  rmdir(dir.c_str());
  if (!st.ok()) return st;
  TailResult res;
  res.pinned = Stats(std::move(pinned));
  res.unpinned = Stats(std::move(unpinned));
  res.no_seccomp = Stats(std::move(plain));
  return res;
}

}  // namespace seccomp_agent::bench
