// escape_probe: the hostile workload of integration:escape_e2e_test, run
// inside a busybox container (static, libc only). Every mode prints one line
// per call; a call's result is "ok" or the errno's name (EACCES, ...).
//
//   escape_probe open [-w] [-C DIR] LABEL=PATH...
//     Opens each PATH (O_RDONLY, -w: O_RDWR; relative to DIR after -C) and
//     prints "OPEN LABEL result=R" and, with an fd, "rdev=MAJ:MIN fs=proc|other
//     link=<what /proc/self/fd/N names> data=<up to 64 bytes, if readable>".
//   escape_probe park THREADS SECONDS PATH
//     THREADS threads open PATH (O_RDONLY), again 20 ms after each return,
//     for SECONDS;
//     prints "PARK started", then "PARK opens=N ok=N" every second (calls
//     that returned, fds obtained), then "PARK done ...". A thread parked
//     in an open never returns, so its count stops.
//   escape_probe timed CALLS mkdir|open PATH
//     CALLS calls 50 ms apart, each timed around the syscall (so from when
//     the kernel traps it): "TIMED i=I us=N result=R", then "TIMED max_us=N".
//   escape_probe as-runtime NAME PATH
//     prctl(PR_SET_NAME, NAME) unless NAME is empty, then mkdir(PATH):
//     "RUNTIME comm=<the name now> result=R".
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
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

namespace {

std::string Result(int rc) {
  if (rc >= 0) return "ok";
  const char* name = strerrorname_np(errno);
  return name != nullptr ? name : std::to_string(errno);
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Printable bytes of what `fd` reads first (others as '.').
std::string Peek(int fd) {
  char buf[64];
  ssize_t n = pread(fd, buf, sizeof(buf), 0);
  std::string out;
  for (ssize_t i = 0; i < n; ++i) out += (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i] : '.';
  return out;
}

// What an fd the task got is: the device, the filesystem, the name.
std::string Describe(int fd) {
  struct stat st;
  struct statfs sfs;
  char link[512] = {};
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  if (readlink(self.c_str(), link, sizeof(link) - 1) < 0) snprintf(link, sizeof(link), "?");
  std::string out;
  if (fstat(fd, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
    out += " rdev=" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
  }
  const bool proc = fstatfs(fd, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC;
  out += proc ? " fs=proc" : " fs=other";
  out += std::string(" link=") + link;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) out += " data=" + Peek(fd);
  return out;
}

int Open(int argc, char** argv) {
  int flags = O_RDONLY;
  int i = 0;
  for (; i < argc && argv[i][0] == '-'; ++i) {
    if (strcmp(argv[i], "-w") == 0) flags = O_RDWR;
    if (strcmp(argv[i], "-C") == 0 && i + 1 < argc && chdir(argv[++i]) != 0) return 3;
  }
  for (; i < argc; ++i) {
    const char* eq = strchr(argv[i], '=');
    if (eq == nullptr) return 2;
    const std::string label(argv[i], eq - argv[i]);
    int fd = open(eq + 1, flags);
    printf("OPEN %s result=%s%s\n", label.c_str(), Result(fd).c_str(),
           fd >= 0 ? Describe(fd).c_str() : "");
    fflush(stdout);
    if (fd >= 0) close(fd);
  }
  return 0;
}

int Park(int threads, int seconds, const char* path) {
  std::atomic<long> opens{0}, ok{0};
  for (int t = 0; t < threads; ++t) {
    std::thread([&opens, &ok, path] {
      for (;;) {
        int fd = open(path, O_RDONLY);
        opens.fetch_add(1);
        if (fd >= 0) {
          ok.fetch_add(1);
          close(fd);
        }
        usleep(20'000);  // parking, not flooding: a parked open never returns
      }
    }).detach();
  }
  printf("PARK started threads=%d\n", threads);
  fflush(stdout);
  for (int s = 1; s <= seconds; ++s) {
    sleep(1);
    printf("PARK opens=%ld ok=%ld\n", opens.load(), ok.load());
    fflush(stdout);
  }
  printf("PARK done opens=%ld ok=%ld\n", opens.load(), ok.load());
  fflush(stdout);
  _exit(0);  // threads parked in a trapped call are killed with the group
}

int Timed(int calls, const std::string& op, const char* path) {
  int64_t max_ns = 0;
  for (int i = 0; i < calls; ++i) {
    const int64_t t0 = NowNs();
    int rc = op == "mkdir" ? mkdir(path, 0755) : open(path, O_RDONLY);
    const int64_t ns = NowNs() - t0;
    const std::string r = Result(rc);
    if (op == "open" && rc >= 0) close(rc);
    if (op == "mkdir" && rc == 0) rmdir(path);
    max_ns = std::max(max_ns, ns);
    printf("TIMED i=%d us=%lld result=%s\n", i, static_cast<long long>(ns / 1000), r.c_str());
    fflush(stdout);
    usleep(50'000);
  }
  printf("TIMED max_us=%lld\n", static_cast<long long>(max_ns / 1000));
  return 0;
}

int AsRuntime(const char* name, const char* path) {
  if (name[0] != '\0' && prctl(PR_SET_NAME, name, 0, 0, 0) != 0) return 3;
  char comm[17] = {};
  prctl(PR_GET_NAME, comm, 0, 0, 0);
  int rc = mkdir(path, 0755);
  printf("RUNTIME comm=%s result=%s\n", comm, Result(rc).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "open") return Open(argc - 2, argv + 2);
  if (mode == "park" && argc == 5) return Park(atoi(argv[2]), atoi(argv[3]), argv[4]);
  if (mode == "timed" && argc == 5) return Timed(atoi(argv[2]), argv[3], argv[4]);
  if (mode == "as-runtime" && argc == 4) return AsRuntime(argv[2], argv[3]);
  fprintf(stderr,
          "usage: escape_probe open [-w] [-C DIR] LABEL=PATH... | park THREADS SECONDS PATH |"
          " timed CALLS mkdir|open PATH | as-runtime NAME PATH\n");
  return 2;
}
