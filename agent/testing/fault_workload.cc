// fault_workload: the workloads of the fault tests (integration/faults_e2e_test,
// integration/soak_test). Statically linked so a test can copy it into a
// busybox container rootfs (or run it under agent/tools:notify-launcher).
// Only libc: every mode prints one line "RESULT key=value ..." and exits 0
// when every trapped call got the answer the mode expects.
//
//   fault_workload storm N FILE        SA_RESTART signal storm over >= N writes
//                                      (replace_write) and >= N binds (rewrite_bind)
//   fault_workload threads N           N threads, one barrier, one mkdir each
//   fault_workload exec-pending MS PATH -- CMD ARGS...
//                                      a thread opens PATH (slow decision);
//                                      after MS ms the main thread execs CMD
//   fault_workload hammer SECONDS THREADS DIR
//                                      sustained mixed notifications (soak)
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// ------------------------------------------------------------------ storm

std::atomic<long> g_signals{0};
std::atomic<bool> g_storm_stop{false};

void OnSignal(int) { g_signals.fetch_add(1, std::memory_order_relaxed); }

struct StormArgs {
  pid_t target_tid;
};

// Signals the main thread every ~10-60 us until told to stop.
void* Stormer(void* p) {
  const pid_t tgid = getpid();
  const pid_t tid = static_cast<StormArgs*>(p)->target_tid;
  prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);  // sleep what we ask, not +50 us
  unsigned seed = 12345;
  while (!g_storm_stop.load()) {
    syscall(SYS_tgkill, tgid, tid, SIGUSR1);
    timespec d{0, 10000 + static_cast<long>(rand_r(&seed) % 50000)};
    nanosleep(&d, nullptr);
  }
  return nullptr;
}

// What the redaction policy turns record i into.
std::string Record(int i) {
  char b[64];
  snprintf(b, sizeof(b), "rec-%06d secret-%06d\n", i, i);
  return b;
}

int Storm(int n, const char* file) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnSignal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGUSR1, &sa, nullptr) != 0) return 2;
  int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    printf("RESULT open-failed errno=%d\n", errno);
    return 2;
  }
  StormArgs args{static_cast<pid_t>(syscall(SYS_gettid))};
  pthread_t t;
  if (pthread_create(&t, nullptr, Stormer, &args) != 0) return 2;

  // At least n calls of each kind, and on until the test creates
  // FILE.writes-done / FILE.binds-done (it waits for the agent to have
  // replayed some interrupted calls), at most 50 * n.
  const std::string writes_done = std::string(file) + ".writes-done";
  const std::string binds_done = std::string(file) + ".binds-done";
  int write_ok = 0, write_bad = 0, bind_ok = 0, bind_bad = 0, eaddrinuse = 0;
  int writes = 0, binds = 0, writes_hit = 0, binds_hit = 0;
  for (; writes < 50 * n && (writes < n || access(writes_done.c_str(), F_OK) != 0); ++writes) {
    const int i = writes;
    const std::string r = Record(i);
    // One write(2): the substitute is written in full and the task sees its
    // own count; a short or failed write is a bad answer.
    const long sig0 = g_signals.load();
    ssize_t w = write(fd, r.data(), r.size());
    if (g_signals.load() != sig0) ++writes_hit;
    if (w == static_cast<ssize_t>(r.size())) {
      ++write_ok;
    } else {
      ++write_bad;
      if (write_bad <= 5) fprintf(stderr, "write %d: %zd errno=%d\n", i, w, errno);
    }
  }
  for (; binds < 50 * n && (binds < n || access(binds_done.c_str(), F_OK) != 0); ++binds) {
    const int i = binds;
    int raw = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (raw < 0) return 2;
    // A different fd number each time (a cycle of 7): consecutive binds are
    // different calls to the agent, not a restart of the same one.
    int s = fcntl(raw, F_DUPFD_CLOEXEC, 100 + i % 7);
    close(raw);
    if (s < 0) return 2;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(80);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    const long sig0 = g_signals.load();
    int rc = bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    const int err = errno;
    if (g_signals.load() != sig0) ++binds_hit;
    sockaddr_in got{};
    socklen_t len = sizeof(got);
    getsockname(s, reinterpret_cast<sockaddr*>(&got), &len);
    // The rewrite lands on 127.0.0.1:8080; a bind that ran twice on this
    // socket fails (EINVAL), one that ran on a port in use gives EADDRINUSE,
    // one that never ran leaves the socket unbound.
    if (rc == 0 && ntohs(got.sin_port) == 8080 && ntohl(got.sin_addr.s_addr) == INADDR_LOOPBACK) {
      ++bind_ok;
    } else {
      ++bind_bad;
      if (err == EADDRINUSE) ++eaddrinuse;
      if (bind_bad <= 5) {
        fprintf(stderr, "bind %d: rc=%d errno=%d port=%d\n", i, rc, rc ? err : 0,
                ntohs(got.sin_port));
      }
    }
    close(s);
  }
  g_storm_stop.store(true);
  pthread_join(t, nullptr);
  close(fd);
  printf(
      "RESULT writes=%d writes_ok=%d writes_bad=%d writes_hit=%d binds=%d binds_ok=%d "
      "binds_bad=%d binds_hit=%d eaddrinuse=%d signals=%ld\n",
      writes, write_ok, write_bad, writes_hit, binds, bind_ok, bind_bad, binds_hit, eaddrinuse,
      g_signals.load());
  fflush(stdout);
  return (write_bad == 0 && bind_bad == 0) ? 0 : 1;
}

// ---------------------------------------------------------------- threads

struct ThreadSlot {
  pthread_barrier_t* barrier;
  int index;
  long ret;
  int err;
  int64_t ns;
};

void* TrapOnce(void* p) {
  auto* s = static_cast<ThreadSlot*>(p);
  char path[64];
  // Even threads: /fake-N (the policy spoofs 0, nothing is made);
  // odd threads: /forbidden/N (EPERM).
  if (s->index % 2 == 0) {
    snprintf(path, sizeof(path), "/fake-%d", s->index);
  } else {
    snprintf(path, sizeof(path), "/forbidden/%d", s->index);
  }
  pthread_barrier_wait(s->barrier);
  const int64_t t0 = NowNs();
  s->ret = syscall(SYS_mkdir, path, 0755);
  s->err = s->ret < 0 ? errno : 0;
  s->ns = NowNs() - t0;
  return nullptr;
}

int Threads(int n) {
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, nullptr, static_cast<unsigned>(n) + 1);
  std::vector<ThreadSlot> slots(n);
  std::vector<pthread_t> ts(n);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int started = 0;
  for (int i = 0; i < n; ++i) {
    slots[i] = ThreadSlot{&barrier, i, -2, 0, 0};
    if (pthread_create(&ts[i], &attr, TrapOnce, &slots[i]) != 0) {
      printf("RESULT create-failed at=%d errno=%d\n", i, errno);
      fflush(stdout);
      _exit(2);
    }
    ++started;
  }
  printf("BARRIER threads=%d\n", started);
  fflush(stdout);
  const int64_t t0 = NowNs();
  pthread_barrier_wait(&barrier);
  for (int i = 0; i < n; ++i) pthread_join(ts[i], nullptr);
  const int64_t wall = NowNs() - t0;
  int spoofed = 0, denied = 0, wrong = 0;
  int64_t max_ns = 0;
  for (const ThreadSlot& s : slots) {
    const bool even = s.index % 2 == 0;
    if (even && s.ret == 0) {
      ++spoofed;
    } else if (!even && s.ret == -1 && s.err == EPERM) {
      ++denied;
    } else {
      ++wrong;
      if (wrong <= 5) fprintf(stderr, "thread %d: ret=%ld errno=%d\n", s.index, s.ret, s.err);
    }
    if (s.ns > max_ns) max_ns = s.ns;
  }
  printf("RESULT threads=%d spoofed=%d denied=%d wrong=%d max_ms=%lld wall_ms=%lld\n", n, spoofed,
         denied, wrong, static_cast<long long>(max_ns / 1000000),
         static_cast<long long>(wall / 1000000));
  fflush(stdout);
  return wrong == 0 ? 0 : 1;
}

// ----------------------------------------------------------- exec-pending

void* OpenSlow(void* p) {
  const char* path = static_cast<const char*>(p);
  printf("OPENING %s\n", path);
  fflush(stdout);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  // Only reached if the decision came before the exec killed this thread.
  printf("OPENED fd=%d errno=%d\n", fd, fd < 0 ? errno : 0);
  fflush(stdout);
  return nullptr;
}

int ExecPending(int ms, const char* path, char** cmd) {
  pthread_t t;
  if (pthread_create(&t, nullptr, OpenSlow, const_cast<char*>(path)) != 0) return 2;
  usleep(static_cast<useconds_t>(ms) * 1000);
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  printf("EXEC at=%lld.%03ld\n", static_cast<long long>(now.tv_sec), now.tv_nsec / 1000000);
  fflush(stdout);
  execv(cmd[0], cmd);
  printf("RESULT exec-failed errno=%d\n", errno);
  return 2;
}

// ----------------------------------------------------------------- hammer

struct HammerArgs {
  int64_t until_ns;
  std::string dir;
  int index;
  long ops = 0, bad = 0;
};

// One round: a spoofed mkdir, a denied mkdir, an allowed (CONTINUE) mkdir +
// rmdir, a redirected open + read + close, a replaced write.
void* Hammer(void* p) {
  auto* a = static_cast<HammerArgs*>(p);
  const std::string fake = "/fake-soak-" + std::to_string(a->index);
  const std::string forbidden = a->dir + "/forbidden/x";
  const std::string allowed =
      a->dir + "/allowed-" + std::to_string(getpid()) + "-" + std::to_string(a->index);
  const std::string redirected = a->dir + "/redirect-me";
  int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  auto bad = [a](const char* what, long rc) {
    if (++a->bad <= 5)
      fprintf(stderr, "hammer %d: %s rc=%ld errno=%d\n", a->index, what, rc, errno);
  };
  while (NowNs() < a->until_ns) {
    for (int k = 0; k < 20; ++k) {
      long rc = syscall(SYS_mkdir, fake.c_str(), 0755);
      if (rc != 0) bad("spoofed mkdir", rc);
      rc = syscall(SYS_mkdir, forbidden.c_str(), 0755);
      if (!(rc == -1 && errno == EPERM)) bad("denied mkdir", rc);
      rc = syscall(SYS_mkdir, allowed.c_str(), 0755);
      if (rc != 0) bad("allowed mkdir", rc);
      rmdir(allowed.c_str());
      a->ops += 3;
    }
    int fd =
        static_cast<int>(syscall(SYS_openat, AT_FDCWD, redirected.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd < 0) {
      bad("redirected open", fd);
    } else {
      char buf[32] = {0};
      ssize_t n = read(fd, buf, sizeof(buf) - 1);
      if (n <= 0 || strncmp(buf, "redirected", 10) != 0) bad("redirected content", n);
      close(fd);
    }
    ssize_t w = write(devnull, "secret-1 soak\n", 14);
    if (w != 14) bad("replaced write", w);
    a->ops += 2;
  }
  close(devnull);
  return nullptr;
}

int HammerMain(int seconds, int threads, const char* dir) {
  std::vector<HammerArgs> args(threads);
  std::vector<pthread_t> ts(threads);
  const int64_t until = NowNs() + int64_t{seconds} * 1000000000;
  for (int i = 0; i < threads; ++i) {
    args[i].until_ns = until;
    args[i].dir = dir;
    args[i].index = i;
    if (pthread_create(&ts[i], nullptr, Hammer, &args[i]) != 0) return 2;
  }
  long ops = 0, bad = 0;
  for (int i = 0; i < threads; ++i) {
    pthread_join(ts[i], nullptr);
    ops += args[i].ops;
    bad += args[i].bad;
  }
  printf("RESULT ops=%ld bad=%ld\n", ops, bad);
  fflush(stdout);
  return bad == 0 ? 0 : 1;
}

int Usage() {
  fprintf(stderr,
          "usage: fault_workload storm N FILE | threads N | exec-pending MS PATH -- CMD... | "
          "hammer SECONDS THREADS DIR\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) return Usage();
  const std::string mode = argv[1];
  if (mode == "storm" && argc == 4) return Storm(atoi(argv[2]), argv[3]);
  if (mode == "threads" && argc == 3) return Threads(atoi(argv[2]));
  if (mode == "exec-pending" && argc >= 6 && strcmp(argv[4], "--") == 0) {
    return ExecPending(atoi(argv[2]), argv[3], argv + 5);
  }
  if (mode == "hammer" && argc == 5) return HammerMain(atoi(argv[2]), atoi(argv[3]), argv[4]);
  return Usage();
}
