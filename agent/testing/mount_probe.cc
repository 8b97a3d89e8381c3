// mount(2) as the container's process calls it, for
// integration:privileged_e2e_test (busybox mount refuses to run as a
// non-root user before it calls mount). Usage:
//   mount_probe FSTYPE SOURCE TARGET [FLAGS [DATA]]
// FSTYPE "-": a NULL type. FLAGS: a number (strtoull base 0). Prints
// "mount: 0" or "mount: ERRNO_NAME"
// and exits with 0 or the errno.
//   mount_probe flood N TARGET
// stacks N tmpfs mounts (size=1m) on TARGET, stopping at the first failure;
// prints "flood: mounted=K error=ERRNO_NAME|none".
//   mount_probe swaprace N SOURCE OTHER TARGET CHECK
// a child swaps the directories SOURCE and OTHER (renameat2
// RENAME_EXCHANGE) without pause while this process binds SOURCE onto
// TARGET (MS_BIND, no MS_REC) N times and after each bind that works looks
// for CHECK; prints "swaprace: bound=B refused=R uncovered=U".
//   mount_probe swap A B
// swaps A and B (renameat2 RENAME_EXCHANGE) without pause until killed
// (a peer for races run from the shell).
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace {

int Flood(long n, const char* target) {
  long mounted = 0;
  int err = 0;
  for (; mounted < n; ++mounted) {
    if (mount("t", target, "tmpfs", 0, "size=1m") != 0) {
      err = errno;
      break;
    }
  }
  printf("flood: mounted=%ld error=%s\n", mounted, err ? strerrorname_np(err) : "none");
  return 0;
}

int SwapRace(long n, const char* source, const char* other, const char* target, const char* check) {
  const pid_t swapper = fork();
  if (swapper < 0) return errno;
  if (swapper == 0) {
    for (;;) syscall(SYS_renameat2, AT_FDCWD, source, AT_FDCWD, other, RENAME_EXCHANGE);
  }
  long bound = 0, refused = 0, uncovered = 0;
  for (long i = 0; i < n; ++i) {
    if (mount(source, target, nullptr, MS_BIND, nullptr) != 0) {
      ++refused;
      continue;
    }
    ++bound;
    if (access(check, F_OK) == 0) ++uncovered;
  }
  kill(swapper, SIGKILL);
  waitpid(swapper, nullptr, 0);
  printf("swaprace: bound=%ld refused=%ld uncovered=%ld\n", bound, refused, uncovered);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "swap") == 0) {
    for (;;) syscall(SYS_renameat2, AT_FDCWD, argv[2], AT_FDCWD, argv[3], RENAME_EXCHANGE);
  }
  if (argc == 4 && strcmp(argv[1], "flood") == 0) return Flood(atol(argv[2]), argv[3]);
  if (argc == 7 && strcmp(argv[1], "swaprace") == 0) {
    return SwapRace(atol(argv[2]), argv[3], argv[4], argv[5], argv[6]);
  }
  if (argc < 4) {
    fprintf(stderr, "usage: %s FSTYPE SOURCE TARGET [FLAGS [DATA]]\n", argv[0]);
    return 64;
  }
  const unsigned long flags = argc > 4 ? strtoul(argv[4], nullptr, 0) : 0;
  const char* data = argc > 5 ? argv[5] : nullptr;
  const char* fstype = strcmp(argv[1], "-") == 0 ? nullptr : argv[1];
  if (mount(argv[2], argv[3], fstype, flags, data) == 0) {
    printf("mount: 0\n");
    return 0;
  }
  const int err = errno;
  printf("mount: %s\n", strerrorname_np(err));
  return err;
}
