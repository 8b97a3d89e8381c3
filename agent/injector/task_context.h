// Running a side effect "as the trapped task" from the agent (emulation).
//
// The side effect runs in a short-lived helper thread of the agent that
// first takes on the task's file-system context and credentials, then
// re-checks NOTIF_ID_VALID, then runs. Everything below is per THREAD at the
// syscall level, so nothing leaks into the agent's other threads:
//   * unshare(CLONE_FS) gives the thread its own root, cwd and umask;
//     fchdir(/proc/TID/root) + chroot(".") makes the task's root the
//     thread's root (path walks, "..", absolute symlinks and the task's
//     mounts all resolve as the task's would: the root's vfsmount belongs
//     to the task's mount namespace), then fchdir(/proc/TID/cwd), and the
//     task's umask;
//   * raw setgroups / setfsgid / setfsuid syscalls (glibc's setgroups
//     wrapper would broadcast to every thread; the raw syscall does not);
//     going from fsuid 0 to the task's fsuid clears the fs capabilities;
//   * raw capset: the effective set becomes the task's CapEff (0 when the
//     task lives in another user namespace: its capabilities are relative
//     to that namespace, so the agent grants none rather than too many).
// The thread exits afterwards, so its private fs_struct and credentials
// die with it.
#ifndef SECCOMP_AGENT_INJECTOR_TASK_CONTEXT_H_
#define SECCOMP_AGENT_INJECTOR_TASK_CONTEXT_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/common/fd.h"

namespace seccomp_agent::injector {

// What /proc/TID/status says about the task (ids as seen from the agent's
// user namespace).
struct TaskCreds {
  pid_t tid = 0;
  pid_t tgid = 0;
  uid_t fsuid = 0;
  gid_t fsgid = 0;
  std::vector<gid_t> groups;
  uint64_t cap_eff = 0;
  mode_t umask = 022;
  bool same_user_ns = true;
};

absl::StatusOr<TaskCreds> ReadTaskCreds(pid_t tid);

// A pidfd for the task: the thread itself when the kernel has PIDFD_THREAD
// (6.9+), else its thread group leader (the fd table is the group's unless
// the thread was cloned without CLONE_FILES).
absl::StatusOr<UniqueFd> OpenTaskPidfd(const TaskCreds& creds);

// pidfd_getfd: a duplicate of the task's fd `targetfd` (O_CLOEXEC here).
absl::StatusOr<UniqueFd> GetTaskFd(int pidfd, int targetfd);

// Where the helper thread stands before it runs the side effect.
struct FsContext {
  int root_fd = -1;  // O_PATH fd of /proc/TID/root, or -1: keep the agent's
  int cwd_fd = -1;   // O_PATH fd of /proc/TID/cwd, or -1: keep
};

// Opens /proc/TID/root and, if `want_cwd`, /proc/TID/cwd (O_PATH).
struct TaskFs {
  UniqueFd root;
  UniqueFd cwd;
};
absl::StatusOr<TaskFs> OpenTaskFs(pid_t tid, bool want_cwd);

// Runs `fn` in a new thread that has taken on `fs` and `creds` (see the top
// of this file) and waits for it. An error means the context could not be
// set up and `fn` did not run.
absl::Status RunAsTask(const TaskCreds& creds, const FsContext& fs, const std::function<void()>& fn);

}  // namespace seccomp_agent::injector

#endif  // SECCOMP_AGENT_INJECTOR_TASK_CONTEXT_H_
