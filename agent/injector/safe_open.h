// The emulated open: what the agent opens on a task's behalf, and how, so
// that it never does more than the task could do itself (SECURITY.md,
// "Emulated opens"). Runs in a thread that already stands in the task's
// credentials and either in its root and cwd (task_context.h, RunAsTask),
// or, for an absolute path that creates nothing, in the agent's root with
// `root_fd` the task's root (see SafeOpenRequest::root_fd).
//
//   1. The path is looked up with openat2(O_PATH, RESOLVE_NO_MAGICLINKS):
//      symlinks resolve as for the task (inside its root: the thread is
//      chroot'ed there, or RESOLVE_IN_ROOT from the root fd), procfs magic
//      links (/proc/N/root, /proc/N/fd/M, /proc/N/cwd, /proc/N/exe) are
//      refused with ELOOP. An O_PATH lookup runs no driver open() and never
//      blocks on a FIFO.
//   2. The O_PATH fd is checked with fstat/fstatfs: anything that is not a
//      regular file or a directory (device nodes, FIFOs, sockets) and
//      anything on procfs (whose /proc/self is the AGENT when the task
//      shares the host pid namespace) is refused (EACCES).
//   3. The checked inode is reopened through the agent's own
//      /proc/self/fd/N (no second path walk, so nothing can be swapped in
//      between) with O_NONBLOCK (a lease or a mandatory lock cannot park
//      the agent), then O_NONBLOCK is cleared with F_SETFL unless the task
//      asked for it.
//   O_CREAT: an existing file goes through 1-3; a missing one is created
//   with O_EXCL, so the agent only ever creates a new regular file (a
//   dangling symlink at the name is not followed: EEXIST). The task's own
//   O_PATH opens return the lookup's fd after the procfs check (an O_PATH fd
//   opens nothing). O_TMPFILE creates in the looked-up directory.
#ifndef SECCOMP_AGENT_INJECTOR_SAFE_OPEN_H_
#define SECCOMP_AGENT_INJECTOR_SAFE_OPEN_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "agent/common/fd.h"

namespace seccomp_agent::injector {

struct SafeOpenRequest {
  int dirfd = -1;              // start of a relative path; AT_FDCWD: the thread's cwd
  const char* path = nullptr;  // NUL-terminated
  // >= 0: an O_PATH fd of the task's root (/proc/TID/root), in which the
  // ABSOLUTE `path` (and `beneath`) resolve with RESOLVE_IN_ROOT instead of
  // in the thread's root: absolute symlinks and ".." stay inside it, as
  // under chroot (and a rename racing ".." fails instead of escaping).
  // `dirfd` is then unused; a relative `path` is refused (EINVAL): from a
  // cwd or dirfd, ".." must climb to the task's root, which only the chroot
  // gives. Nothing is created through it either (O_CREAT, O_TMPFILE need the
  // task's umask, which only the task's fs context gives): EINVAL.
  int root_fd = -1;
  int flags = 0;  // the task's open flags
  mode_t mode = 0;
  // Non-empty: an absolute directory (in the thread's root) the file must
  // resolve beneath (RESOLVE_BENEATH from it: no "..", no absolute symlink
  // out). `path` must then be absolute and start with it.
  std::string beneath;
};

struct SafeOpenResult {
  UniqueFd fd;      // valid on success (O_CLOEXEC in the agent)
  int error = 0;    // the errno the task sees otherwise
  std::string why;  // set when the agent refused (error EACCES): "char device", ...
};

// Opens /proc/self/fd of the agent once, before any thread stands in a
// task's root (the reopen in step 3 goes through it). Call from outside
// RunAsTask; cheap after the first call.
absl::Status PrepareSafeOpen();

// Steps 1-3 above. Call inside RunAsTask, after PrepareSafeOpen().
SafeOpenResult SafeOpen(const SafeOpenRequest& req);

}  // namespace seccomp_agent::injector

#endif  // SECCOMP_AGENT_INJECTOR_SAFE_OPEN_H_
