#include "agent/common/read_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "agent/common/fd.h"
#include "agent/common/status.h"

namespace seccomp_agent {

absl::Status ReadWholeFile(int dirfd, const char* path, std::string& text) {
  UniqueFd f(openat(dirfd, path, O_RDONLY | O_CLOEXEC));
  if (!f) return ErrnoStatus(errno ? errno : ESRCH, absl::StrCat("open ", path));
  if (text.size() < 4096) text.resize(4096);
  size_t len = 0;
  for (;;) {
    ssize_t n = read(f.get(), text.data() + len, text.size() - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
    len += static_cast<size_t>(n);
    // procfs and sysfs fill the buffer unless the text ends: a short read
    // is the end (one read(2) for a status file, not two).
    if (n == 0 || len < text.size()) break;
    text.resize(text.size() * 2);  // e.g. a status file with many groups
  }
  text.resize(len);
  return absl::OkStatus();
}

std::string ReadFileOrEmpty(int dirfd, const std::string& path) {
  std::string text;
  if (!ReadWholeFile(dirfd, path.c_str(), text).ok()) return "";
  return text;
}

}  // namespace seccomp_agent
