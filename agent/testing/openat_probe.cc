// openat_probe DIR NAME: opens DIR (O_PATH), then NAME relative to that
// dirfd, and prints "dirfd-open: ok" or "dirfd-open: <strerror>". The
// dirfd case of integration:plugin_e2e_test (a shell cannot openat).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: openat_probe DIR NAME\n");
    return 2;
  }
  int dfd = open(argv[1], O_PATH | O_DIRECTORY);
  if (dfd < 0) {
    printf("dir-open: %s\n", strerror(errno));
    return 1;
  }
  int fd = openat(dfd, argv[2], O_RDONLY);
  printf("dirfd-open: %s\n", fd >= 0 ? "ok" : strerror(errno));
  return fd >= 0 ? 0 : 1;
}
