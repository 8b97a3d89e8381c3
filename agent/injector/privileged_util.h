// Pieces the privileged operations share (privileged.cc, bind_mount.cc):
// the reply, the task's mount table and namespaces, and the child that
// joins them. Internal to agent/injector.
#ifndef SECCOMP_AGENT_INJECTOR_PRIVILEGED_UTIL_H_
#define SECCOMP_AGENT_INJECTOR_PRIVILEGED_UTIL_H_

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/common/fd.h"
#include "agent/injector/injector.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent::injector {

// Sends {error, flags} for `id`; the Outcome names the agent as the backend
// and `result` (task-gone when the kernel says the call is gone).
absl::StatusOr<Outcome> Reply(UnotifyInterface& u, int listener, uint64_t id, uint32_t flags,
                              int error, std::string result);

// The Outcome of a call whose task went away before the side effect.
Outcome Gone();

// The inode of a /proc/.../ns/* file, 0 when it cannot be stat()ed.
ino_t NsInode(const std::string& path);

// One mount of a mountinfo text.
struct MountInfoLine {
  bool found = false;
  bool shared = false;      // "shared:" among the optional fields
  std::string mount_point;  // field 5, unescaped (relative to the reader's root)
};

// The line of `mnt_id` in a mountinfo text.
MountInfoLine FindMount(absl::string_view text, uint64_t mnt_id);

// Every mount point of a mountinfo text, unescaped (\040 -> ' ').
std::vector<std::string> MountPoints(absl::string_view text);

// /proc/TID/mountinfo, at most 16 MiB (EFBIG past it).
absl::StatusOr<std::string> ReadMountInfo(pid_t tid);

// The task's namespaces a mount needs, opened from /proc/TID/ns/* (the fds
// pin them: a reused pid cannot substitute another process's): its user
// namespace when it is not the agent's, its mount namespace, and with
// `net_ipc` its network and IPC namespaces.
struct NsFd {
  const char* name;
  int type;
  UniqueFd fd;
};
absl::StatusOr<std::vector<NsFd>> OpenTaskNamespaces(pid_t tid, bool net_ipc);

// The most mounts a task's mount namespace may hold (as its mountinfo
// lists them) for the agent to add one more. Every mount the agent makes is
// made by the agent's child, not charged to the container, and the
// kernel's only bound is fs.mount-max (100,000 per namespace); a runtime
// gives a container a few dozen.
inline constexpr size_t kMaxTaskMounts = 1000;

// The most mounts the agent tries for one container in mount namespaces
// other than the container's own (its init's): a task with CAP_SYS_ADMIN
// in its user namespace can make as many namespaces as its pids limit
// allows, each under kMaxTaskMounts. Counted over the container's life
// (the agent cannot see when such a namespace and its mounts are gone).
inline constexpr uint32_t kMaxNestedMounts = 1000;

// The container a mount is for: its init (whose mount namespace is the
// container's own) and its count of mounts in other namespaces
// (ContainerUsage::nested_mounts). Null count: no container (a bare task
// in a test): nothing is counted.
struct MountScope {
  pid_t container_init = 0;
  std::atomic<uint32_t>* nested_mounts = nullptr;
};

// What every mount for a task needs, taken before NOTIF_ID_VALID: its
// namespaces (OpenTaskNamespaces) and its /proc/TID/mountinfo. `done` is set
// (the reply sent, or the task gone) when the agent must not mount for the
// task: it shares the agent's mount namespace (EPERM), or, with
// `adds_mount`, its namespace already holds kMaxTaskMounts mounts, or it is
// not the container's own and the container has had kMaxNestedMounts there
// (EPERM).
struct TaskMounts {
  std::vector<NsFd> nss;
  std::string mountinfo;
  std::optional<Outcome> done;
};
absl::StatusOr<TaskMounts> PrepareTaskMounts(UnotifyInterface& u, int listener,
                                             const seccomp_notif& notif, bool net_ipc,
                                             bool adds_mount, const MountScope& scope);

// The mount `fd` (the `what`: "target", "source") is on must be one of the task's (in `mountinfo`:
// EINVAL otherwise) and, with `refuse_shared`, not shared (EPERM: a mount on it would propagate to
// its peers). A set result is the reply sent; `line` gets the mount's line.
absl::StatusOr<std::optional<Outcome>> CheckTaskMount(UnotifyInterface& u, int listener,
                                                      uint64_t id, const std::string& mountinfo,
                                                      int fd, const char* what, bool refuse_shared,
                                                      MountInfoLine* line);

// Runs `fn` (returning 0 or an errno) in a child of the calling thread that
// is not dumpable and has joined `nss`, and returns what it returned (EINTR
// when it was killed). The child is a raw clone of a threaded process: `fn`
// may only make syscalls (no allocation, no locks).
pid_t RawFork();
int WaitExit(pid_t pid);
template <typename Fn>
int RunInNamespaces(const std::vector<NsFd>& nss, const Fn& fn) {
  const pid_t child = RawFork();
  if (child < 0) return errno;
  if (child == 0) {
    // Not ptrace-able from a user namespace it joins (its mm stays the
    // agent's, owned by the initial user namespace).
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) _exit(errno);
    for (const NsFd& n : nss) {
      if (setns(n.fd.get(), n.type) != 0) _exit(errno);
    }
    _exit(fn());
  }
  return WaitExit(child);
}

}  // namespace seccomp_agent::injector

#endif  // SECCOMP_AGENT_INJECTOR_PRIVILEGED_UTIL_H_
