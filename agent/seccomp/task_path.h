// The path a task's syscall names, as the kernel resolves it for the task:
// in the task's root, from its cwd or dirfd, with "..", symlinks and the
// procfs links (/proc/self, /proc/thread-self, /proc/N/root, /proc/N/cwd,
// /proc/N/fd/M, ...) followed as they are for the task, not for the agent.
// The policy matches on this (issue 12 item 4): `mkdir /tmp/../forbidden/x`,
// `/proc/self/root/forbidden/x` and a symlink `/link -> /forbidden` all
// name /forbidden/x.
//
// How (all from the agent, reading only; nothing is opened for the task):
//   * fast path: one openat2(O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)
//     of the path (or of its parent, when the last component does not exist)
//     from the task's root. When that succeeds there is no symlink on the
//     way, and the lexical normalization is what the kernel resolves.
//   * otherwise a walk, one component at a time (O_PATH | O_NOFOLLOW):
//     a symlink's text is spliced in (an absolute one restarts at the task's
//     root, ".." never climbs above it); on a procfs mounted in the task's
//     root, "self" and "thread-self" become the TASK's pid (and tid) in that
//     procfs (not the reader's: that would be the agent), and a magic link
//     (/proc/N/root, cwd, exe, fd/M, map_files/...) is followed to its
//     target, whose path in the task's root is then checked by inode; a
//     target outside the task's root is an error (fail closed).
//   * a component that does not exist (or is not a directory): the rest is
//     appended lexically; the kernel fails such a call anyway.
//   * the last component is followed when it is a symlink only if
//     `follow_last` (open without O_NOFOLLOW, ...); mkdir, unlink, rename,
//     O_CREAT|O_EXCL and the like act on the link itself.
// The result is a snapshot: a peer thread can change a symlink or its cwd
// right after (see docs/THREAT_MODEL.md: path rules under CONTINUE are not
// a boundary).
#ifndef SECCOMP_AGENT_SECCOMP_TASK_PATH_H_
#define SECCOMP_AGENT_SECCOMP_TASK_PATH_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "agent/common/fd.h"

namespace seccomp_agent {

// One trapped call's task root: /proc/PID/root (O_PATH), opened on first use
// and then shared by every resolution in the task's root made for that ONE
// call (the engine's rule match, the redirect target's pin, the emulated
// open: three opens of /proc/PID/root per emulated call before). Never kept
// past the call: a task may chroot, pivot_root or unshare its mount
// namespace between two calls, and its pid may be reused once the call is
// over. Within the call the pid is the trapped task's (the engine checks
// NOTIF_ID_VALID after the first resolution, the emulation again before its
// side effect); a peer thread that changes the shared root during the call
// races the call as it would in the kernel, and every step of the call then
// uses the root the decision was made in.
class CallRoot {
 public:
  CallRoot() = default;
  explicit CallRoot(pid_t pid) : pid_(pid) {}
  pid_t pid() const { return pid_; }

 private:
  friend absl::StatusOr<int> TaskRootFd(pid_t pid, UniqueFd& owned);
  pid_t pid_ = 0;
  UniqueFd fd_;
};

// Makes `root` the calling thread's call root while alive (the previous
// one, if any, comes back after). The engine holds one around the decision
// of a call and one around its handler, each with that call's CallRoot.
class CallRootScope {
 public:
  explicit CallRootScope(CallRoot* root);
  ~CallRootScope();
  CallRootScope(const CallRootScope&) = delete;
  CallRootScope& operator=(const CallRootScope&) = delete;

 private:
  CallRoot* prev_;
};

// An O_PATH fd of the task's root: the thread's call root when it is for
// `pid` (opened by the first caller, owned by the CallRoot), else a fresh
// open of /proc/PID/root owned by `owned`.
absl::StatusOr<int> TaskRootFd(pid_t pid, UniqueFd& owned);

// `dirfd`: the task's dirfd (as int32), or AT_FDCWD for its cwd; unused
// for an absolute path. An error: the path could not be resolved (the task
// is gone, its dirfd is not a directory in its root, a magic link leads out
// of its root, too many links).
absl::StatusOr<std::string> ResolveTaskPath(pid_t pid, int64_t dirfd, const std::string& path,
                                            bool follow_last);

// Lexically joins `rel` onto `base` and normalizes ".", ".." and "//" (".."
// at "/" stays at "/"). Correct only for paths without symlinks.
std::string JoinNormalize(const std::string& base, const std::string& rel);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_SECCOMP_TASK_PATH_H_
