// Running a side effect "as the trapped task" from the agent (emulation).
//
// The side effect runs in the CALLING thread (an engine worker or whichever
// thread called the injector), which first takes on the task's file-system
// context and credentials, then re-checks NOTIF_ID_VALID, then runs, and is
// then put back exactly as it was. Everything below is per THREAD at the
// syscall level, so nothing leaks into the agent's other threads:
//   * unshare(CLONE_FS) gives the thread its own root, cwd and umask. It is
//     called on every call that needs a root or cwd: free when the thread
//     is already the only user of its fs_struct, and it cuts loose any
//     thread this one created since (those share its fs_struct through
//     CLONE_FS and would otherwise stand in the task's root with it); per call
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
// A credential that already has the task's value (e.g. fsuid 0 for a root
// task) is not set, nor restored: setting it would change nothing.
// Afterwards (also when the setup failed half-way) the thread is restored:
// capabilities (capset of the effective set it had), groups, fsgid, fsuid,
// capabilities again (going back to fsuid 0 can raise fs capabilities), the
// effective set verified, to the values the thread had on its first call
// (cached per thread; the agent changes no thread's credentials elsewhere),
// then chroot back to the root it had when it unshared (only if the chroot
// into the task's root happened: without CAP_SYS_CHROOT the call fails
// cleanly as before), its cwd, its umask. A thread that cannot be restored
// aborts the agent: it would otherwise go on deciding inside a container's
// root or with a container's credentials (fail closed).
//
// Why not a helper thread per call (the earlier design) or a pool of them:
// the per-call thread (clone + unshare(CLONE_FS) + exit + join) was most of
// the 89-450 us an emulated openat cost; a pool keeps that off the path but
// still pays two cross-thread wake-ups per call (several us on a loaded
// 2-core host, against a ~12 us open+ADDFD floor), and a thread parked in
// a container's root would pin that container's mount (or would have to be
// keyed by mount id + inode and evicted). The calling thread does exactly
// the same syscalls on its own task_struct, with the same results; what it
// adds is the restore, a handful of syscalls. What an emulated open does
// inside that context (openat2 with RESOLVE_NO_MAGICLINKS, O_PATH, type
// checks, reopen, O_NONBLOCK) is in safe_open.h.
//
// `fn` must not create threads: a thread created while the calling thread
// stands in the task's context would keep the task's credentials and share
// its root and cwd. Likewise a signal handler that runs in this thread
// during `fn` runs in the task's context (the agent blocks its handled
// signals in every thread; the old helper thread had the same exposure).
//
// Caveat: a thread that has run a task's side effect no longer shares its
// root, cwd and umask with the rest of the process; it returns to the ones
// the process had when the thread first unshared. The agent never changes
// its cwd, root or umask after start (no chdir/chroot/umask outside this
// file), so that is the same thing.
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
  // Whether the task is in the agent's user namespace. Only looked up when
  // cap_eff != 0 (it only decides whether capabilities are granted); false
  // otherwise.
  bool same_user_ns = true;
  // Capabilities added to the effective set for the side effect, on top of
  // the task's (privileged.h: CAP_MKNOD for a listed device node). Never
  // set from the task: only the agent's code that needs one sets it.
  uint64_t grant_caps = 0;
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

// /proc/TID/root and, if `want_cwd`, /proc/TID/cwd (O_PATH). The root is
// the calling thread's call root when it has one for `tid` (the one the
// engine resolved this call's paths in: agent/seccomp/task_path.h,
// CallRoot), else opened here.
struct TaskFs {
  int root = -1;  // the call root's fd, or root_owned's
  UniqueFd root_owned;
  UniqueFd cwd;
};
absl::StatusOr<TaskFs> OpenTaskFs(pid_t tid, bool want_cwd);

// Runs `fn` in the calling thread after it has taken on `fs` and `creds`
// (see the top of this file), then restores the thread. An error means the
// context could not be set up and `fn` did not run. `fn` must not change
// the thread's root, cwd, umask or credentials itself.
absl::Status RunAsTask(const TaskCreds& creds, const FsContext& fs,
                       const std::function<void()>& fn);

}  // namespace seccomp_agent::injector

#endif  // SECCOMP_AGENT_INJECTOR_TASK_CONTEXT_H_
