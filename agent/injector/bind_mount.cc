#include "agent/injector/bind_mount.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "agent/common/fd.h"
#include "agent/common/status.h"
#include "agent/injector/privileged_util.h"
#include "agent/injector/task_context.h"

namespace seccomp_agent::injector {
namespace {

// `path` (absolute, already resolved) beneath `root`, nothing followed.
int OpenResolved(int root, const std::string& path, UniqueFd* out) {
  open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd = -1;
  for (int i = 0; i < 4; ++i) {  // EAGAIN: a rename raced ".." (openat2's own check)
    fd = static_cast<int>(syscall(SYS_openat2, root, path.c_str(), &how, sizeof(how)));
    if (fd >= 0 || errno != EAGAIN) break;
  }
  if (fd < 0) return errno;
  out->reset(fd);
  return 0;
}

const char* KindOf(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return "a directory";
    case S_IFREG:
      return "a regular file";
    case S_IFIFO:
      return "a FIFO";
    case S_IFSOCK:
      return "a socket";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFLNK:
      return "a symlink";
    default:
      return "of an unknown type";
  }
}

// In the child: the clone of the source, attributes set while detached,
// attached at the target; or the remount's attributes. 0 or an errno.
int BindAt(const BindRequest& req, int source, int target) {
  mount_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.attr_set = req.attrs;
  if (req.remount) {
    return mount_setattr(target, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0 ? 0 : errno;
  }
  // Always the whole tree: a bind without MS_REC was refused when the
  // mountinfo showed mounts beneath the source's path, but that was read
  // before the source was opened, and a peer that swaps (RENAME_EXCHANGE)
  // another directory in at that path between the two gets a clone without
  // the mounts that cover its files. With nothing beneath, both clones are
  // the same.
  const int tree =
      open_tree(source, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
  if (tree < 0) return errno;
  attr.propagation = MS_PRIVATE;
  if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) != 0) {
    return errno;
  }
  if (move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
    return errno;
  }
  return 0;
}

// The checks of step 3 (bind_mount.h) that are about the files: a refusal
// (errno and text) or nullopt.
std::optional<std::pair<int, std::string>> CheckKinds(const BindRequest& req, int source,
                                                      int target) {
  struct stat t;
  if (fstat(target, &t) != 0) return std::pair{errno, std::string("target stat")};
  if (!S_ISDIR(t.st_mode) && !S_ISREG(t.st_mode)) {
    return std::pair{EPERM, absl::StrCat("the target is ", KindOf(t.st_mode))};
  }
  if (req.remount) {
    struct statx stx;
    if (statx(target, "", AT_EMPTY_PATH, 0, &stx) != 0) return std::pair{errno, "target statx"};
    if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) ||
        !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
      return std::pair{EINVAL, std::string("the target is not a mount's root")};
    }
    return std::nullopt;
  }
  struct stat s;
  if (fstat(source, &s) != 0) return std::pair{errno, std::string("source stat")};
  if (!S_ISDIR(s.st_mode) && !S_ISREG(s.st_mode)) {
    return std::pair{EPERM, absl::StrCat("the source is ", KindOf(s.st_mode),
                                         ": only a directory or a regular file is bound")};
  }
  if (S_ISDIR(s.st_mode) != S_ISDIR(t.st_mode)) {
    return std::pair{ENOTDIR, std::string("the source and the target are not of one kind")};
  }
  return std::nullopt;
}

}  // namespace

bool MountBeneath(const std::string& dir, const std::string& mount_point) {
  if (dir == "/") return mount_point.size() > 1 && mount_point[0] == '/';
  return mount_point.size() > dir.size() + 1 && mount_point.compare(0, dir.size(), dir) == 0 &&
         mount_point[dir.size()] == '/';
}

absl::StatusOr<Outcome> BindInTask(UnotifyInterface& u, int listener, const seccomp_notif& notif,
                                   const BindRequest& req) {
  const pid_t tid = static_cast<pid_t>(notif.pid);
  SA_ASSIGN_OR_RETURN(TaskCreds creds, ReadTaskCreds(tid));
  SA_ASSIGN_OR_RETURN(TaskFs fs, OpenTaskFs(tid, false));
  SA_ASSIGN_OR_RETURN(TaskMounts mounts,
                      PrepareTaskMounts(u, listener, notif, false, !req.remount, req.scope));
  if (mounts.done) return *std::move(mounts.done);
  auto refuse = [&](int err, const std::string& why) {
    return Reply(u, listener, notif.id, 0, err, absl::StrCat(ErrnoName(err), " (", why, ")"));
  };

  // Both paths, opened as the task beneath its root.
  int source_err = 0, target_err = 0;
  UniqueFd source, target;
  SA_RETURN_IF_ERROR(RunAsTask(creds, FsContext{}, [&] {
    if (!req.remount) source_err = OpenResolved(fs.root, req.source, &source);
    target_err = OpenResolved(fs.root, req.target, &target);
  }));
  if (source_err != 0) return refuse(source_err, absl::StrCat("source lookup ", req.source));
  if (target_err != 0) return refuse(target_err, absl::StrCat("target lookup ", req.target));
  if (auto bad = CheckKinds(req, source.get(), target.get()))
    return refuse(bad->first, bad->second);

  MountInfoLine line;
  SA_ASSIGN_OR_RETURN(std::optional<Outcome> refused,
                      CheckTaskMount(u, listener, notif.id, mounts.mountinfo, target.get(),
                                     "target", /*refuse_shared=*/!req.remount, &line));
  if (refused) return *std::move(refused);
  if (!req.remount) {
    SA_ASSIGN_OR_RETURN(refused, CheckTaskMount(u, listener, notif.id, mounts.mountinfo,
                                                source.get(), "source", false, &line));
    if (refused) return *std::move(refused);
    if (!req.recursive) {
      for (const std::string& mp : MountPoints(mounts.mountinfo)) {
        if (MountBeneath(req.source, mp)) {
          return refuse(EPERM, absl::StrCat("mounts lie beneath the source (", mp,
                                            "): a bind without MS_REC would uncover them"));
        }
      }
    }
  }
  if (!u.IdValid(listener, notif.id).ok()) return Gone();  // before the side effect

  // Raw syscalls only in the child (the agent is threaded).
  const int err =
      RunInNamespaces(mounts.nss, [&] { return BindAt(req, source.get(), target.get()); });
  if (err != 0) return refuse(err, req.what);
  return Reply(u, listener, notif.id, 0, 0,
               absl::StrCat("0 (", req.remount ? "remounted " : "bound ", req.what, ")"));
}

}  // namespace seccomp_agent::injector
