#include "agent/bench/workload.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/status.h"
#include "agent/seccomp/filter_util.h"

namespace seccomp_agent::bench {
namespace {

int64_t Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

absl::StatusOr<std::vector<sock_filter>> BuildFilter(Filter f, Workload w) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return absl::InternalError("seccomp_init");
  int nr = seccomp_syscall_resolve_name(TrappedSyscall(w));
  int rc = 0;
  if (f == Filter::kNotify) {
    rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0);
  } else if (f == Filter::kDeny) {
    // A compiled kernel rule: the filter answers by itself, no supervisor.
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
  } else {
    // A rule that never fires keeps the filter the same size as kNotify's.
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(swapoff), 0);
  }
  if (rc != 0) {
    seccomp_release(ctx);
    return ErrnoStatus(-rc, "seccomp_rule_add");
  }
  return ExportBpf(ctx);
}

// The measured loop. Runs in the child; only raw syscalls.
double RunLoop(const ChildOptions& o, const char* path) {
  int64_t t0 = Now();
  for (int i = 0; i < o.iterations; ++i) {
    int64_t s = o.latencies ? Now() : 0;
    switch (o.workload) {
      case Workload::kGetppid:
        syscall(SYS_getppid);
        break;
      case Workload::kOpenat: {
        int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
        if (fd >= 0) syscall(SYS_close, fd);
        break;
      }
      case Workload::kMkdir:
        syscall(SYS_mkdir, path, 0755);
        break;
    }
    if (o.latencies) o.latencies[i] = Now() - s;
  }
  return static_cast<double>(Now() - t0) / o.iterations;
}

}  // namespace

const char* WorkloadName(Workload w) {
  switch (w) {
    case Workload::kGetppid:
      return "getppid";
    case Workload::kOpenat:
      return "openat+close";
    case Workload::kMkdir:
      return "mkdir";
  }
  return "?";
}

const char* TrappedSyscall(Workload w) {
  switch (w) {
    case Workload::kGetppid:
      return "getppid";
    case Workload::kOpenat:
      return "openat";
    case Workload::kMkdir:
      return "mkdir";
  }
  return "?";
}

absl::StatusOr<Child> SpawnWorkload(const ChildOptions& o) {
  std::vector<sock_filter> prog;
  if (o.filter == Filter::kAllow || o.filter == Filter::kNotify || o.filter == Filter::kDeny) {
    SA_ASSIGN_OR_RETURN(prog, BuildFilter(o.filter, o.workload));
  }
  std::string path = o.workload == Workload::kOpenat ? "/etc/hostname"
                                                     : absl::StrCat(o.scratch_dir, "/bench-mkdir");
  int sv[2], res[2], go[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return ErrnoStatus(errno, "socketpair");
  UniqueFd ps(sv[0]), cs(sv[1]);
  if (pipe2(res, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  UniqueFd res_r(res[0]), res_w(res[1]);
  if (pipe2(go, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  UniqueFd go_r(go[0]), go_w(go[1]);

  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (o.cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(o.cpu, &set);
      sched_setaffinity(0, sizeof(set), &set);
    }
    if (o.filter == Filter::kPtrace) {
      ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
      raise(SIGSTOP);
    } else if (!prog.empty()) {
      prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
      sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
      unsigned flags = o.filter == Filter::kNotify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
      int l = static_cast<int>(syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog));
      if (l < 0) _exit(120);
      if (o.filter == Filter::kNotify) {
        SendOneFd(cs.get(), l);
        close(l);
      }
    }
    char b;
    if (read(go_r.get(), &b, 1) != 1) _exit(121);
    double ns = RunLoop(o, path.c_str());
    (void)!write(res_w.get(), &ns, sizeof(ns));
    _exit(0);
  }
  Child c;
  c.pid = pid;
  if (o.filter == Filter::kNotify) {
    int fd = RecvOneFd(ps.get());
    if (fd < 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return absl::InternalError("workload did not send its listener");
    }
    c.listener.reset(fd);
  }
  c.result = std::move(res_r);
  c.go = std::move(go_w);
  return c;
}

namespace {

double ProcessCpuNs() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  auto ns = [](const timeval& t) { return t.tv_sec * 1e9 + t.tv_usec * 1e3; };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

// StartChild and FinishChild run on the bench's main thread.
double g_loop_cpu_start_ns = 0;
double g_loop_cpu_ns = 0;

}  // namespace

void StartChild(Child& c) {
  g_loop_cpu_start_ns = ProcessCpuNs();
  char b = 'G';
  (void)!write(c.go.get(), &b, 1);
}

absl::StatusOr<double> FinishChild(Child& c) {
  double ns = 0;
  ssize_t n = read(c.result.get(), &ns, sizeof(ns));
  g_loop_cpu_ns = ProcessCpuNs() - g_loop_cpu_start_ns;
  int status = 0;
  waitpid(c.pid, &status, 0);
  c.pid = -1;
  if (n != sizeof(ns)) return absl::InternalError(absl::StrCat("workload died, status ", status));
  return ns;
}

double LastLoopCpuNs() { return g_loop_cpu_ns; }

}  // namespace seccomp_agent::bench
