// mount(2) as the container's process calls it, for
// integration:privileged_e2e_test (busybox mount refuses to run as a
// non-root user before it calls mount). Usage:
//   mount_probe FSTYPE SOURCE TARGET [FLAGS [DATA]]
// FLAGS: a number (strtoull base 0). Prints "mount: 0" or "mount: ERRNO_NAME"
// and exits with 0 or the errno.
#include <sys/mount.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s FSTYPE SOURCE TARGET [FLAGS [DATA]]\n", argv[0]);
    return 64;
  }
  const unsigned long flags = argc > 4 ? strtoul(argv[4], nullptr, 0) : 0;
  const char* data = argc > 5 ? argv[5] : nullptr;
  if (mount(argv[2], argv[3], argv[1], flags, data) == 0) {
    printf("mount: 0\n");
    return 0;
  }
  const int err = errno;
  printf("mount: %s\n", strerrorname_np(err));
  return err;
}
