// A static test program run INSIDE the VM's runc/crun containers
// (integration/vm_runtime): the TOCTOU races and the openat benchmark, which
// a busybox shell cannot do. Plain libc, statically linked: the container
// rootfs holds busybox and this file, nothing else.
//
//   ctr-workload race TRIALS PATH_ALLOWED PATH_FORBIDDEN
//     A peer thread flips the task's path buffer between the two paths
//     (same length, differing in one byte) while the main thread opens it.
//     An escape is an open that returned a file whose content starts with
//     "FORBIDDEN". Prints
//     "RACE trials=N escapes=E denied=D redirected=R allowed=A other=O".
//   ctr-workload dirrace dirfd|cwd TRIALS DIR_ALLOWED DIR_FORBIDDEN NAME
//     The relative path NAME stays the same; what it is resolved against
//     changes. dirfd: a peer thread dup2()s the two directories onto fd 10
//     in a loop while the main thread calls openat(10, NAME). cwd: the peer
//     fchdir()s between them (threads share the cwd) while the main thread
//     calls openat(AT_FDCWD, NAME). Same counts and RACE line as `race`
//     (with mode=dirfd|cwd); an escape is a file starting "FORBIDDEN".
//   ctr-workload bench CALLS PATH
//     CALLS x (openat(PATH) + close), each timed with rdtsc: the VM's
//     kernel cannot calibrate its TSC under TCG and falls back to jiffies
//     (4 ms steps), while QEMU's rdtsc counts host ticks. The ticks are
//     converted with CLOCK_MONOTONIC over the whole round. Prints
//     "BENCH path=P calls=N median_ns=M p10_ns=A p90_ns=B failed=F".
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace {

struct RaceShared {
  char path[256];
  size_t flip_at = 0;
  char byte_allowed = 0, byte_forbidden = 0;
  std::atomic<bool> stop{false};
};

// Only memory writes: the flipper makes no syscall the filter would trap.
void* Flipper(void* arg) {
  auto* s = static_cast<RaceShared*>(arg);
  volatile char* p = s->path;
  while (!s->stop.load(std::memory_order_relaxed)) {
    p[s->flip_at] = s->byte_forbidden;
    p[s->flip_at] = s->byte_allowed;
  }
  return nullptr;
}

struct RaceCounts {
  long escapes = 0, denied = 0, redirected = 0, allowed = 0, other = 0;
};

void Classify(int fd, RaceCounts* c) {
  if (fd < 0) {
    (errno == EPERM ? c->denied : c->other)++;
    return;
  }
  char buf[32] = {};
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  close(fd);
  if (n <= 0) {
    c->other++;
  } else if (strncmp(buf, "FORBIDDEN", 9) == 0) {
    c->escapes++;
  } else if (strncmp(buf, "REDIRECTED", 10) == 0) {
    c->redirected++;
  } else if (strncmp(buf, "ALLOWED", 7) == 0) {
    c->allowed++;
  } else {
    c->other++;
  }
}

int Race(long trials, const std::string& allowed, const std::string& forbidden) {
  if (allowed.size() != forbidden.size() || allowed.size() >= sizeof(RaceShared::path)) {
    fprintf(stderr, "race: the two paths must have the same length\n");
    return 2;
  }
  size_t diff = allowed.size(), ndiff = 0;
  for (size_t i = 0; i < allowed.size(); ++i) {
    if (allowed[i] != forbidden[i]) {
      diff = i;
      ++ndiff;
    }
  }
  if (ndiff != 1) {
    fprintf(stderr, "race: the two paths must differ in exactly one byte\n");
    return 2;
  }
  static RaceShared s;
  memcpy(s.path, allowed.c_str(), allowed.size() + 1);
  s.flip_at = diff;
  s.byte_allowed = allowed[diff];
  s.byte_forbidden = forbidden[diff];
  pthread_t t;
  if (pthread_create(&t, nullptr, Flipper, &s) != 0) {
    fprintf(stderr, "race: pthread_create failed\n");
    return 1;
  }
  RaceCounts c;
  for (long i = 0; i < trials; ++i) Classify(openat(AT_FDCWD, s.path, O_RDONLY | O_CLOEXEC), &c);
  s.stop = true;
  pthread_join(t, nullptr);
  printf("RACE trials=%ld escapes=%ld denied=%ld redirected=%ld allowed=%ld other=%ld\n", trials,
         c.escapes, c.denied, c.redirected, c.allowed, c.other);
  return 0;
}

constexpr int kRaceFd = 10;

struct DirRaceShared {
  bool cwd = false;
  int allowed = -1, forbidden = -1;
  std::atomic<bool> stop{false};
};

// Swaps what NAME is resolved against: fd 10 (dup2 replaces it atomically,
// never leaving it closed) or the shared cwd. dup2 and fchdir are not
// trapped (the case's filter traps openat only).
void* Swapper(void* arg) {
  auto* s = static_cast<DirRaceShared*>(arg);
  while (!s->stop.load(std::memory_order_relaxed)) {
    if (s->cwd) {
      (void)fchdir(s->forbidden);
      (void)fchdir(s->allowed);
    } else {
      (void)dup2(s->forbidden, kRaceFd);
      (void)dup2(s->allowed, kRaceFd);
    }
  }
  return nullptr;
}

int DirRace(const std::string& mode, long trials, const char* allowed, const char* forbidden,
            const char* name) {
  if ((mode != "dirfd" && mode != "cwd") || strchr(name, '/') != nullptr) {
    fprintf(stderr, "dirrace: mode is dirfd or cwd, NAME a plain file name\n");
    return 2;
  }
  static DirRaceShared s;
  s.cwd = mode == "cwd";
  s.allowed = open(allowed, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  s.forbidden = open(forbidden, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s.allowed < 0 || s.forbidden < 0 || s.allowed == kRaceFd || s.forbidden == kRaceFd ||
      dup2(s.allowed, kRaceFd) != kRaceFd || fchdir(s.allowed) != 0) {
    fprintf(stderr, "dirrace: cannot open %s and %s: %s\n", allowed, forbidden, strerror(errno));
    return 1;
  }
  pthread_t t;
  if (pthread_create(&t, nullptr, Swapper, &s) != 0) {
    fprintf(stderr, "dirrace: pthread_create failed\n");
    return 1;
  }
  const int dirfd = s.cwd ? AT_FDCWD : kRaceFd;
  RaceCounts c;
  for (long i = 0; i < trials; ++i) Classify(openat(dirfd, name, O_RDONLY | O_CLOEXEC), &c);
  s.stop = true;
  pthread_join(t, nullptr);
  printf(
      "RACE mode=%s name=%s trials=%ld escapes=%ld denied=%ld redirected=%ld allowed=%ld "
      "other=%ld\n",
      mode.c_str(), name, trials, c.escapes, c.denied, c.redirected, c.allowed, c.other);
  return 0;
}

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int Bench(long calls, const char* path) {
  std::vector<uint64_t> ticks;
  ticks.reserve(static_cast<size_t>(calls));
  long failed = 0;
  const int64_t start_ns = NowNs();
  const uint64_t start_tick = __rdtsc();
  for (long i = 0; i < calls; ++i) {
    const uint64_t t0 = __rdtsc();
    int fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) close(fd);
    ticks.push_back(__rdtsc() - t0);
    if (fd < 0) ++failed;
  }
  const double ns_per_tick =
      static_cast<double>(NowNs() - start_ns) / static_cast<double>(__rdtsc() - start_tick);
  std::sort(ticks.begin(), ticks.end());
  auto at = [&](double q) {
    const size_t i = static_cast<size_t>(q * static_cast<double>(ticks.size() - 1));
    return static_cast<long long>(static_cast<double>(ticks[i]) * ns_per_tick);
  };
  printf("BENCH path=%s calls=%ld median_ns=%lld p10_ns=%lld p90_ns=%lld failed=%ld\n", path, calls,
         at(0.5), at(0.1), at(0.9), failed);
  return failed == 0 ? 0 : 1;
}

long Count(const char* s) {
  char* end = nullptr;
  long v = strtol(s, &end, 10);
  return (end != s && *end == '\0' && v > 0) ? v : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && strcmp(argv[1], "race") == 0 && Count(argv[2]) > 0) {
    return Race(Count(argv[2]), argv[3], argv[4]);
  }
  if (argc == 7 && strcmp(argv[1], "dirrace") == 0 && Count(argv[3]) > 0) {
    return DirRace(argv[2], Count(argv[3]), argv[4], argv[5], argv[6]);
  }
  if (argc == 4 && strcmp(argv[1], "bench") == 0 && Count(argv[2]) > 0) {
    return Bench(Count(argv[2]), argv[3]);
  }
  fprintf(stderr,
          "usage: ctr-workload race TRIALS PATH_ALLOWED PATH_FORBIDDEN\n"
          "       ctr-workload dirrace dirfd|cwd TRIALS DIR_ALLOWED DIR_FORBIDDEN NAME\n"
          "       ctr-workload bench CALLS PATH\n");
  return 2;
}
