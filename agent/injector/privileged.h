// Privileged operations the agent performs for a task that lacks the
// privilege itself (README "Privileged operations"): sysinfo answered from
// the container's cgroup, mknod of listed device nodes. Neither is a
// substitution the kernel could inject (the task would fail the kernel's
// own check), so both run in the agent, and both are written so that the
// agent does no more than the policy lists (SECURITY.md "Privileged
// operations"):
//
// sysinfo: the struct is built from the task's cgroup (cgroup_view.h), the
//   host's loads and the container's start time, for the call's ABI
//   (x86_64 or i386), and written into the task at the pointer it passed
//   through /proc/TID/mem, which is opened BEFORE NOTIF_ID_VALID is checked:
//   the fd pins the task's address space, so a task that dies after the
//   check (and a pid that is reused) cannot redirect the write to another
//   process. Then the call returns 0 (EFAULT when the write fails).
// mknod, mknodat: the caller (agent/engine/apply_action: the policy's
//   allow list, agent/policy/privileged_rules.h) decided that the device
//   may be made; the injector knows nothing of policies. The node is created in the calling thread
//   standing in the task's root, cwd, umask, fsuid/fsgid and groups (task_context.h) with one
//   capability added, CAP_MKNOD: the parent directory is looked up with
//   openat2(O_PATH|O_DIRECTORY, RESOLVE_NO_MAGICLINKS) from the task's root
//   or cwd/dirfd, then mknodat(parent, name): the directory's permission
//   check is the task's (no DAC override), the final name is never
//   followed (an existing name, a symlink included, is EEXIST), the node
//   is owned by the task's fsuid/fsgid with the task's umask.
// mount: the caller decided the type, flags and options are listed
//   (privileged_rules.h DecideMount). The target is looked up as the task
//   (its creds, root and cwd) with openat2(O_PATH|O_DIRECTORY,
//   RESOLVE_NO_MAGICLINKS); its mount must be in the task's mount
//   namespace, that namespace must not be the agent's, and the mount must
//   not be shared (a mount there would propagate to its peers, e.g. the
//   host). The task's user (when not the agent's), mount, network, IPC and
//   pid namespaces are opened before NOTIF_ID_VALID; then a child process
//   (not dumpable) joins the first four and runs fsopen, fsconfig (only the
//   listed options; procfs gets the task's pid namespace through its
//   "pidns" option, so the child never enters the container's pid
//   namespace), fsmount (nosuid, nodev always) and move_mount onto the
//   target fd. Nothing there opens a device, a file or the network, so
//   nothing blocks; the worker waits for the child.
// setxattr, lsetxattr, fsetxattr: the caller decided the name is a listed
//   trusted.* name (privileged_rules.h DecideXattrName), which the kernel
//   lets only CAP_SYS_ADMIN in the initial user namespace set and checks
//   nothing else for (no ownership, no permission bits): so the agent's
//   checks are the whole check. The file is looked up as the task (its
//   creds, root and cwd) with openat2(O_PATH, RESOLVE_NO_MAGICLINKS,
//   O_NOFOLLOW for lsetxattr), or is the task's fd (pidfd_getfd; an O_PATH
//   fd is EBADF, as the kernel says). Before acting, the file must be
//   (each failure EPERM, naming the check): a directory, a regular file or
//   (lsetxattr) a symlink; owned by the task (its fsuid, as the agent sees
//   both: the owner as mapped in the task's user namespace is the task
//   itself, the rule overlayfs applies to user.* attributes in a user
//   namespace); not on procfs or FUSE (a FUSE server may be the container
//   and would block the worker); on a mount the task sees from its root
//   (the mount is in /proc/TID/mountinfo, which lists only mounts reachable
//   from the task's root: an fd passed in from the host or leaked from a
//   runtime is refused). Then, after NOTIF_ID_VALID, the calling thread
//   takes on the task's credentials with CAP_SYS_ADMIN added (task_context.h;
//   in the agent's own root) and sets the attribute through its own
//   /proc/thread-self/fd/N of the checked fd: no second path walk, nothing
//   opened (a lease or a FIFO cannot park the worker), the task's mount (so
//   a read-only mount is EROFS).
#ifndef SECCOMP_AGENT_INJECTOR_PRIVILEGED_H_
#define SECCOMP_AGENT_INJECTOR_PRIVILEGED_H_

#include <linux/seccomp.h>
#include <sys/sysinfo.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/injector/cgroup_view.h"
#include "agent/injector/injector.h"
#include "agent/injector/privileged_util.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent::injector {

inline constexpr std::string_view kBackendAgent = "agent";

// The sysinfo struct for `arch` (AUDIT_ARCH_X86_64 or AUDIT_ARCH_I386) from
// the cgroup's view, the host's own sysinfo (loads, and the ceiling of
// every memory value) and the container's uptime in seconds. Pure.
absl::StatusOr<std::string> BuildSysinfo(uint32_t arch, const CgroupMemory& cg,
                                         const struct sysinfo& host, int64_t uptime_s);

// Seconds since the container's init (`init_pid`, when it is in the task's
// pid namespace) or else the task itself started.
absl::StatusOr<int64_t> ContainerUptime(pid_t tid, pid_t init_pid);

// Builds and writes the answer, then replies (0, or EFAULT when the write
// fails). `init_pid`: the container's init, for the uptime (0: unknown).
absl::StatusOr<Outcome> AnswerSysinfo(UnotifyInterface& unotify, int listener,
                                      const seccomp_notif& notif, pid_t init_pid);

// What to create: the agent's copy of the task's path, its dirfd (AT_FDCWD
// for mknod or a cwd-relative mknodat), and the mode and device from the
// registers.
struct NodeRequest {
  std::string path;
  int dirfd = -100;  // AT_FDCWD
  mode_t mode = 0;
  dev_t dev = 0;
  std::string what;  // for the decision log, e.g. "c 1:3"
};

// Creates the node as the task (see the top of this file) and replies 0 or
// the errno the task's own mknodat would have given.
absl::StatusOr<Outcome> CreateNode(UnotifyInterface& unotify, int listener,
                                   const seccomp_notif& notif, const NodeRequest& req);

// What to mount: the agent's copy of the target path (relative: from the
// task's cwd), the file system type and its data options (already allowed by
// the caller), and the MOUNT_ATTR_* flags.
struct MountRequest {
  std::string target;
  std::string fstype;
  std::vector<std::pair<std::string, std::string>> options;  // value "": a flag option
  uint64_t attrs = 0;
  std::string what;  // for the decision log, e.g. "proc nosuid,nodev"
  MountScope scope;  // the container it is for (privileged_util.h)
};

// Mounts as described at the top of this file and replies 0 or the errno.
absl::StatusOr<Outcome> MountInTask(UnotifyInterface& unotify, int listener,
                                    const seccomp_notif& notif, const MountRequest& req);

// What to set: the agent's copies of the name (already allowed by the
// caller: a listed trusted.* name) and value, the flags, and where: the
// task's path (relative: from its cwd; `follow` false for lsetxattr) or,
// when `by_fd`, the task's fd `fd` (fsetxattr).
struct XattrRequest {
  std::string path;
  bool follow = true;
  bool by_fd = false;
  int fd = -1;
  std::string name;
  std::string value;
  int flags = 0;
  std::string what;  // for the decision log, e.g. "trusted.overlay.opaque=\"y\" (1 bytes)"
};

// Sets the attribute as described at the top of this file and replies 0 or
// the errno (EPERM naming the check the file failed).
absl::StatusOr<Outcome> SetXattrAsTask(UnotifyInterface& unotify, int listener,
                                       const seccomp_notif& notif, const XattrRequest& req);

// Replies {error} (or CONTINUE) for a privileged call the caller refused;
// the Outcome names the agent as the backend.
absl::StatusOr<Outcome> ReplyPrivileged(UnotifyInterface& unotify, int listener, uint64_t id,
                                        bool allow, int error, std::string result);

}  // namespace seccomp_agent::injector

#endif  // SECCOMP_AGENT_INJECTOR_PRIVILEGED_H_
