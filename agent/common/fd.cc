#include "agent/common/fd.h"

#include <unistd.h>

namespace seccomp_agent {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

}  // namespace seccomp_agent
