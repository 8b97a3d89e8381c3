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
//   mount_probe nsflood N TARGET
// the same from a new user and mount namespace of its own (root in it:
// its uid and gid mapped to 0), as `unshare -rm` without the propagation
// change busybox makes first (a mount with no type, which the agent
// refuses).
//   mount_probe mntnsflood N TARGET
// the same from a new mount namespace only (needs CAP_SYS_ADMIN in the
// caller's user namespace), as `unshare -m` without that change.
//   mount_probe swaprace N SOURCE OTHER TARGET CHECK
// a child swaps the directories SOURCE and OTHER (renameat2
// RENAME_EXCHANGE) without pause while this process binds SOURCE onto
// TARGET (MS_BIND, no MS_REC) N times and after each bind that works looks
// for CHECK; prints "swaprace: bound=B refused=R uncovered=U".
//   mount_probe swap A B
// swaps A and B (renameat2 RENAME_EXCHANGE) without pause until killed
// (a peer for races run from the shell).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <utility>
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

bool WriteFile(const char* path, const char* text) {
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t len = static_cast<ssize_t>(strlen(text));
  const bool ok = write(fd, text, len) == len;
  close(fd);
  return ok;
}

int MntNsFlood(long n, const char* target) {
  if (unshare(CLONE_NEWNS) != 0) {
    printf("mntnsflood: unshare: %s\n", strerrorname_np(errno));
    return 1;
  }
  return Flood(n, target);
}

int NsFlood(long n, const char* target) {
  char uid_map[32], gid_map[32];
  snprintf(uid_map, sizeof(uid_map), "0 %u 1", getuid());
  snprintf(gid_map, sizeof(gid_map), "0 %u 1", getgid());
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
    printf("nsflood: unshare: %s\n", strerrorname_np(errno));
    return 1;
  }
  for (const auto& [file, text] : {std::pair<const char*, const char*>{"setgroups", "deny"},
                                   {"uid_map", uid_map},
                                   {"gid_map", gid_map}}) {
    if (!WriteFile((std::string("/proc/self/") + file).c_str(), text)) {
      printf("nsflood: %s \"%s\": %s\n", file, text, strerrorname_np(errno));
      return 1;
    }
  }
  return Flood(n, target);
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
  if (argc == 4 && strcmp(argv[1], "nsflood") == 0) return NsFlood(atol(argv[2]), argv[3]);
  if (argc == 4 && strcmp(argv[1], "mntnsflood") == 0) return MntNsFlood(atol(argv[2]), argv[3]);
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
