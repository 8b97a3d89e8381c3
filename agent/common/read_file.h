// Reading a whole small file (a /proc or /sys text) with read(2): no
// streams, no exceptions (a libstdc++ stream read that fails, e.g. with
// ESRCH on the /proc file of a task that exits meanwhile, throws from an input
// stream iterator and took the agent down), any length.
#ifndef SECCOMP_AGENT_COMMON_READ_FILE_H_
#define SECCOMP_AGENT_COMMON_READ_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace seccomp_agent {

// `path` relative to `dirfd` (or AT_FDCWD), read to its end into `text`,
// whose capacity is reused (a hot path may pass a thread_local string),
// until read(2) returns 0. More than `max_bytes`: EFBIG. `open_flags` are added
// to O_RDONLY | O_CLOEXEC (e.g. O_NOFOLLOW). An error names the path and
// carries the errno (ErrnoOf); `text` is then unspecified.
absl::Status ReadWholeFile(int dirfd, const char* path, std::string& text,
                           size_t max_bytes = SIZE_MAX, int open_flags = 0);

// The same, "" on any error (a task that has gone reads as nothing).
std::string ReadFileOrEmpty(int dirfd, const std::string& path);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_COMMON_READ_FILE_H_
