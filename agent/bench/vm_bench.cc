// vm_bench: openat under a supervisor, three ways, as ratios within ONE run
// (meant for the project's VM on the patched kernel: agent/bench/vm_bench.sh).
//
//   CONTINUE   RECV -> SEND(CONTINUE): the task runs its own openat
//   INJECT     RECV -> process_vm_readv of the path -> NOTIF_INJECT of the
//              agent's copy -> SEND(INJECTED): the task runs the substitute
//   ADDFD      RECV -> process_vm_readv -> open in the supervisor ->
//              ADDFD(SEND): the minimal emulation (no credential switch)
//
// Each mode: a fresh worker thread installs a NOTIFY filter on openat for
// itself (no TSYNC: only that thread is filtered) and loops openat+close; a
// supervisor thread of the same process answers. Rounds are interleaved
// (round 1 of every mode, then round 2, ...) and the median is reported.
// Prints a markdown table; exit 0 when every mode completed. A kernel
// without NOTIF_INJECT: the INJECT row says "unsupported".
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "agent/seccomp/uapi.h"

namespace {

constexpr char kTarget[] = "/tmp/vm_bench_target";

enum Mode { kNone, kContinue, kInject, kAddfd, kModes };
const char* kNames[] = {"no filter", "CONTINUE", "INJECT + SEND(INJECTED)", "open + ADDFD(SEND)"};

int64_t Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int InstallFilter() {
  sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof(f) / sizeof(f[0])), f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return static_cast<int>(
      syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog));
}

std::atomic<bool> inject_unsupported{false};

void Supervise(int listener, Mode mode, const std::atomic<bool>& stop) {
  for (;;) {
    // RECV would block for good once the worker is gone: poll first (HUP
    // when the filter has no task left; the timeout covers older kernels).
    pollfd p{listener, POLLIN, 0};
    int pr = poll(&p, 1, 50);
    if (pr < 0 && errno != EINTR) return;
    if (pr <= 0 || !(p.revents & POLLIN)) {
      if (stop || (p.revents & (POLLHUP | POLLERR | POLLNVAL))) return;
      continue;
    }
    seccomp_notif n;
    memset(&n, 0, sizeof(n));
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &n) != 0) {
      if (errno == EINTR) continue;
      return;  // ENOENT/EBADF...: the worker is gone or the listener closed
    }
    seccomp_notif_resp r;
    memset(&r, 0, sizeof(r));
    r.id = n.id;
    if (mode == kContinue) {
      r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
      ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
      continue;
    }
    char path[256];
    iovec local{path, sizeof(path) - 1};
    iovec remote{reinterpret_cast<void*>(n.data.args[1]), sizeof(path) - 1};
    ssize_t got = process_vm_readv(n.pid, &local, 1, &remote, 1, 0);
    if (got <= 0) {
      r.error = -EFAULT;
      ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
      continue;
    }
    path[got] = '\0';
    const int flags = static_cast<int>(n.data.args[2]);
    if (mode == kInject) {
      seccomp_notif_inject inj;
      memset(&inj, 0, sizeof(inj));
      inj.id = n.id;
      inj.nr = __NR_openat;
      inj.args[0] = n.data.args[0];
      inj.args[1] = 0;  // offset of the path in buf
      inj.args[2] = n.data.args[2];
      inj.args[3] = n.data.args[3];
      inj.buf = reinterpret_cast<uintptr_t>(path);
      inj.buf_size = static_cast<__u32>(strlen(path) + 1);
      inj.args_in_buf_mask = 1u << 1;
      if (ioctl(listener, SECCOMP_IOCTL_NOTIF_INJECT, &inj) != 0) {
        if (errno == ENOTTY || errno == EINVAL) inject_unsupported = true;
        r.error = -ENOSYS;
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
        continue;
      }
      r.flags = SECCOMP_USER_NOTIF_FLAG_INJECTED;
      ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
      continue;
    }
    // kAddfd
    int fd = open(path, flags | O_CLOEXEC, static_cast<mode_t>(n.data.args[3]));
    if (fd < 0) {
      r.error = -errno;
      ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
      continue;
    }
    seccomp_notif_addfd a;
    memset(&a, 0, sizeof(a));
    a.id = n.id;
    a.flags = SECCOMP_ADDFD_FLAG_SEND;
    a.srcfd = static_cast<__u32>(fd);
    a.newfd_flags = flags & O_CLOEXEC;
    ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
    close(fd);
  }
}

// One run of `mode`: ns per openat+close, or < 0 on failure.
double RunOnce(Mode mode, int iterations) {
  std::atomic<int> listener{-2};
  std::atomic<bool> go{false};
  double ns = -1;
  int bad = 0;
  std::thread worker([&] {
    if (mode != kNone) {
      int l = InstallFilter();
      listener = l;
      if (l < 0) return;
    } else {
      listener = -1;
    }
    while (!go) std::this_thread::yield();
    int64_t t0 = Now();
    for (int i = 0; i < iterations; ++i) {
      int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, kTarget, O_RDONLY | O_CLOEXEC));
      if (fd < 0) {
        ++bad;
        continue;
      }
      syscall(SYS_close, fd);
    }
    ns = static_cast<double>(Now() - t0) / iterations;
  });
  while (listener == -2) std::this_thread::yield();
  const int l = listener;
  if (mode != kNone && l < 0) {
    worker.join();
    return -1;
  }
  std::atomic<bool> stop{false};
  std::thread sup;
  if (mode != kNone) sup = std::thread([l, mode, &stop] { Supervise(l, mode, stop); });
  go = true;
  worker.join();
  if (mode != kNone) {
    stop = true;
    sup.join();
    close(l);
  }
  if (bad > 0) {
    fprintf(stderr, "vm_bench: %s: %d of %d opens failed\n", kNames[mode], bad, iterations);
    return -1;
  }
  return ns;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = argc > 1 ? atoi(argv[1]) : 2000;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (iterations <= 0 || rounds <= 0) {
    fprintf(stderr, "usage: vm_bench [ITERATIONS [ROUNDS]]\n");
    return 2;
  }
  mkdir("/tmp", 01777);
  int t = open(kTarget, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (t < 0) {
    perror("vm_bench: create target");
    return 1;
  }
  close(t);

  std::vector<double> samples[kModes];
  bool failed[kModes] = {};
  for (int r = 0; r < rounds; ++r) {
    for (int m = 0; m < kModes; ++m) {
      if (failed[m]) continue;
      double ns = RunOnce(static_cast<Mode>(m), iterations);
      if (ns < 0) {
        failed[m] = true;
        continue;
      }
      samples[m].push_back(ns);
    }
  }
  double med[kModes] = {};
  for (int m = 0; m < kModes; ++m) {
    if (!failed[m]) med[m] = Median(samples[m]);
  }
  char kernel[256] = "?";
  if (FILE* f = fopen("/proc/sys/kernel/osrelease", "r")) {
    if (fgets(kernel, sizeof(kernel), f)) kernel[strcspn(kernel, "\n")] = '\0';
    fclose(f);
  }
  printf("\nvm_bench: kernel %s, %ld CPUs, median of %d rounds, %d openat+close per round\n\n",
         kernel, sysconf(_SC_NPROCESSORS_ONLN), rounds, iterations);
  printf("| mode | ns/call | ratio to CONTINUE |\n| --- | ---: | ---: |\n");
  for (int m = 0; m < kModes; ++m) {
    if (failed[m]) {
      printf("| %s | %s | |\n", kNames[m],
             m == kInject && inject_unsupported ? "unsupported (no NOTIF_INJECT)" : "failed");
      continue;
    }
    std::string ratio = "";
    if (m != kNone && !failed[kContinue]) {
      char b[32];
      snprintf(b, sizeof(b), "%.2fx", med[m] / med[kContinue]);
      ratio = b;
    }
    printf("| %s | %.0f | %s |\n", kNames[m], med[m], ratio.c_str());
  }
  if (!failed[kInject] && !failed[kContinue]) {
    printf("\nINJECT/CONTINUE ratio: %.2f (target <= 1.2)\n", med[kInject] / med[kContinue]);
  }
  bool any_failed = false;
  for (bool f : failed) any_failed |= f;
  return any_failed ? 1 : 0;
}
