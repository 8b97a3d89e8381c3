#include "agent/common/read_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "agent/common/fd.h"
#include "agent/common/status.h"

namespace seccomp_agent {

absl::Status ReadWholeFile(int dirfd, const char* path, std::string& text, size_t max_bytes,
                           int open_flags) {
  UniqueFd f(openat(dirfd, path, O_RDONLY | O_CLOEXEC | open_flags));
  if (!f) return ErrnoStatus(errno ? errno : ESRCH, absl::StrCat("open ", path));
  if (text.size() < 4096) text.resize(4096);
  size_t len = 0;
  for (;;) {
    ssize_t n = read(f.get(), text.data() + len, text.size() - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
    len += static_cast<size_t>(n);
    if (len > max_bytes) return ErrnoStatus(EFBIG, absl::StrCat("read ", path));
    // To the end (read returns 0): procfs does return short reads before
    // it (a mountinfo past its first page), so a short one is no end.
    if (n == 0) break;
    if (len == text.size()) text.resize(text.size() * 2);
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
