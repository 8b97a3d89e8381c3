// seccomp-agent-hook: the OCI hook of seccomp-agent. See hook.h and README.md.
#include <errno.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "oci-hook/hook.h"

namespace {

constexpr size_t kMaxStdinBytes = 64 << 20;

bool ReadAll(int fd, std::string* out) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out->append(buf, static_cast<size_t>(n));
    if (out->size() > kMaxStdinBytes) return false;
  }
}

bool WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  seccomp_agent::hook::HookIo io;
  if (!ReadAll(0, &io.in)) {
    fprintf(stderr, "seccomp-agent-hook: cannot read stdin (error or larger than 64 MiB)\n");
    return 1;
  }
  int rc = seccomp_agent::hook::RunHook(args, io);
  WriteAll(2, io.err);
  // Everything is decided; the output goes out in one piece or not at all.
  if (rc == 0 && !WriteAll(1, io.out)) {
    fprintf(stderr, "seccomp-agent-hook: writing stdout failed\n");
    return 1;
  }
  return rc;
}
