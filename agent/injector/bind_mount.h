// Bind mounts the agent makes for a task (README "Privileged operations",
// SECURITY.md "mount: bind"). The caller (agent/engine/apply_action) has
// resolved the source and target in the task's root as the kernel would
// for the task (agent/seccomp/task_path.h) and matched them against the
// rule's bind entry (agent/policy/privileged_rules.h DecideBind); the
// injector knows nothing of policies.
//
// What the agent does, in this order:
//   1. the task's user (when not the agent's) and mount namespaces are
//      opened and its mountinfo read; a task in the agent's own mount
//      namespace is refused;
//   2. as the task (its fsuid, fsgid, groups and capabilities:
//      task_context.h), the resolved paths are opened O_PATH from the
//      task's root with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS |
//      RESOLVE_NO_MAGICLINKS): nothing is followed (the resolution did
//      that; a symlink swapped in since is ELOOP), nothing climbs out of the
//      root, nothing is opened for I/O (a FIFO cannot block);
//   3. source and target must be directories or regular files (EPERM
//      otherwise: a FIFO, socket or device node is never bound), the same
//      kind (ENOTDIR), on mounts of the task's mount namespace, the target's
//      mount not shared (EPERM); a bind without MS_REC must not have mounts
//      beneath the source (EPERM: the clone would uncover what they cover,
//      e.g. the runtime's masks over /proc); a remount's target must be a
//      mount's root (EINVAL, as the kernel says);
//   4. NOTIF_ID_VALID, then a non-dumpable child joins the namespaces and
//      runs open_tree(OPEN_TREE_CLONE | AT_RECURSIVE) of the source fd,
//      with or without MS_REC (step 3's check is by path, read before the
//      source was opened: a directory swapped in at the path between the
//      two must not lose the mounts beneath it; with none beneath, both
//      clones are the same; the kernel refuses a source outside the
//      child's, i.e. the task's, mount namespace), mount_setattr over the
//      whole clone (nosuid, nodev, and ro/noexec when asked; private: no
//      propagation to or from the source's peers) and move_mount onto the
//      target fd. A remount is mount_setattr on the
//      target that only sets attributes, never clears one.
#ifndef SECCOMP_AGENT_INJECTOR_BIND_MOUNT_H_
#define SECCOMP_AGENT_INJECTOR_BIND_MOUNT_H_

#include <linux/seccomp.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "agent/injector/injector.h"
#include "agent/injector/privileged_util.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent::injector {

struct BindRequest {
  std::string source;  // absolute, resolved in the task's root; unused for a remount
  std::string target;  // absolute, resolved in the task's root
  bool remount = false;
  bool recursive = false;  // MS_REC: mounts beneath the source are allowed
  uint64_t attrs = 0;      // MOUNT_ATTR_* to set
  std::string what;        // for the decision log, e.g. "/srv/a -> /mnt/a nosuid nodev"
  MountScope scope;        // the container it is for (privileged_util.h)
};

// Binds (or remounts) as described above and replies 0 or the errno.
absl::StatusOr<Outcome> BindInTask(UnotifyInterface& unotify, int listener,
                                   const seccomp_notif& notif, const BindRequest& req);

// Whether a mount point lies strictly beneath `dir` (both absolute paths in
// the same root).
bool MountBeneath(const std::string& dir, const std::string& mount_point);

}  // namespace seccomp_agent::injector

#endif  // SECCOMP_AGENT_INJECTOR_BIND_MOUNT_H_
