// setxattr(2), lsetxattr(2) and fsetxattr(2) as the container's process
// calls them, for integration:privileged_e2e_test (busybox has no
// setfattr). Usage:
//   xattr_probe set|lset|fset|fsetpath|fsetfd NAME VALUE PATH [FLAGS]
// set: setxattr(PATH); lset: lsetxattr(PATH); fset: fsetxattr on PATH
// opened O_RDONLY|O_NONBLOCK (a FIFO does not block the open); fsetpath:
// fsetxattr on an O_PATH|O_NOFOLLOW fd; fsetfd: fsetxattr on the inherited
// fd numbered PATH. VALUE "@N": N bytes of 'a'. FLAGS:
// a number (1 XATTR_CREATE, 2 XATTR_REPLACE). Prints "setxattr: 0" or
// "setxattr: ERRNO_NAME" and exits with 0 or the errno.
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s set|lset|fset|fsetpath|fsetfd NAME VALUE PATH [FLAGS]\n", argv[0]);
    return 64;
  }
  const std::string how = argv[1];
  const char* name = argv[2];
  std::string value = argv[3];
  if (value[0] == '@') value.assign(strtoul(argv[3] + 1, nullptr, 10), 'a');
  const char* path = argv[4];
  const int flags = argc > 5 ? static_cast<int>(strtol(argv[5], nullptr, 0)) : 0;
  int r = -1;
  if (how == "set") {
    r = setxattr(path, name, value.data(), value.size(), flags);
  } else if (how == "lset") {
    r = lsetxattr(path, name, value.data(), value.size(), flags);
  } else if (how == "fsetfd") {
    r = fsetxattr(atoi(path), name, value.data(), value.size(), flags);
  } else if (how == "fset" || how == "fsetpath") {
    const int fd = how == "fset" ? open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
                                 : open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      printf("open: %s\n", strerrorname_np(err));
      return err;
    }
    r = fsetxattr(fd, name, value.data(), value.size(), flags);
  } else {
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 64;
  }
  if (r == 0) {
    printf("setxattr: 0\n");
    return 0;
  }
  const int err = errno;
  printf("setxattr: %s\n", strerrorname_np(err));
  return err;
}
