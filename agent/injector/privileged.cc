#include "agent/injector/privileged.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <linux/magic.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "agent/common/fd.h"
#include "agent/common/status.h"
#include "agent/injector/privileged_util.h"
#include "agent/injector/task_context.h"

namespace seccomp_agent::injector {
namespace {

// struct sysinfo as an i386 task sees it (kernel/sys.c: compat_sysinfo).
struct CompatSysinfo {
  int32_t uptime;
  uint32_t loads[3];
  uint32_t totalram, freeram, sharedram, bufferram, totalswap, freeswap;
  uint16_t procs;
  uint16_t pad;
  uint32_t totalhigh, freehigh;
  uint32_t mem_unit;
  char f[8];
};
static_assert(sizeof(CompatSysinfo) == 64, "compat sysinfo is 64 bytes");

// Byte values of one answer, before the ABI's layout.
struct Values {
  uint64_t total = 0, free = 0, shared = 0, swap_total = 0, swap_free = 0;
  uint64_t procs = 0;
};

Values ValuesOf(const CgroupMemory& cg, const struct sysinfo& host) {
  const uint64_t unit = host.mem_unit ? host.mem_unit : 1;
  const uint64_t host_total = uint64_t{host.totalram} * unit;
  const uint64_t host_swap = uint64_t{host.totalswap} * unit;
  Values v;
  v.total = std::min(cg.mem_limit.value_or(host_total), host_total);
  v.free = v.total - std::min(cg.mem_usage, v.total);
  v.shared = std::min(cg.shmem, v.total);
  if (cg.swap_usage.has_value()) {  // swap not accounted: the container has none it can see
    v.swap_total = std::min(cg.swap_limit.value_or(host_swap), host_swap);
    v.swap_free = v.swap_total - std::min(*cg.swap_usage, v.swap_total);
  }
  v.procs = std::min<uint64_t>(cg.tasks.value_or(0), 0xffff);
  return v;
}

std::string Compat(const Values& v, const struct sysinfo& host, int64_t uptime_s) {
  // Like the kernel's compat path: scale by a larger mem_unit until every
  // value fits 32 bits (at most the page size).
  uint64_t unit = 1;
  auto fits = [&](uint64_t x) { return x / unit <= UINT32_MAX; };
  while (unit < 4096 && !(fits(v.total) && fits(v.swap_total))) unit <<= 1;
  auto scaled = [&](uint64_t x) {
    return static_cast<uint32_t>(std::min<uint64_t>(x / unit, UINT32_MAX));
  };
  CompatSysinfo c;
  memset(&c, 0, sizeof(c));
  c.uptime = static_cast<int32_t>(std::min<int64_t>(uptime_s, INT32_MAX));
  for (int i = 0; i < 3; ++i) c.loads[i] = static_cast<uint32_t>(host.loads[i]);
  c.totalram = scaled(v.total);
  c.freeram = scaled(v.free);
  c.sharedram = scaled(v.shared);
  c.totalswap = scaled(v.swap_total);
  c.freeswap = scaled(v.swap_free);
  c.procs = static_cast<uint16_t>(v.procs);
  c.mem_unit = static_cast<uint32_t>(unit);
  return std::string(reinterpret_cast<const char*>(&c), sizeof(c));
}

// The start time of /proc/PID/stat (field 22), in clock ticks after boot.
absl::StatusOr<uint64_t> StartTicks(pid_t pid) {
  const std::string path = absl::StrCat("/proc/", pid, "/stat");
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  char buf[1024];
  ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  if (n <= 0) return ErrnoStatus(n < 0 ? errno : EIO, absl::StrCat("read ", path));
  std::string text(buf, static_cast<size_t>(n));
  const size_t close = text.rfind(')');  // comm may hold spaces and ')'
  if (close == std::string::npos) return ErrnoStatus(EINVAL, absl::StrCat(path, ": no comm"));
  std::vector<absl::string_view> f = absl::StrSplit(absl::string_view(text).substr(close + 2), ' ');
  uint64_t start = 0;  // f[0] is field 3 (state): field 22 is f[19]
  if (f.size() < 20 || !absl::SimpleAtoi(f[19], &start)) {
    return ErrnoStatus(EINVAL, absl::StrCat(path, ": no start time"));
  }
  return start;
}

ino_t PidNsInode(pid_t pid) {
  struct stat st;
  if (stat(absl::StrCat("/proc/", pid, "/ns/pid").c_str(), &st) != 0) return 0;
  return st.st_ino;
}

}  // namespace

absl::StatusOr<std::string> BuildSysinfo(uint32_t arch, const CgroupMemory& cg,
                                         const struct sysinfo& host, int64_t uptime_s) {
  const Values v = ValuesOf(cg, host);
  if (arch == AUDIT_ARCH_I386) return Compat(v, host, uptime_s);
  if (arch != AUDIT_ARCH_X86_64) {
    return ErrnoStatus(ENOSYS, absl::StrFormat("sysinfo: arch 0x%x has no layout here", arch));
  }
  struct sysinfo s;
  memset(&s, 0, sizeof(s));
  s.uptime = uptime_s;
  for (int i = 0; i < 3; ++i) s.loads[i] = host.loads[i];
  s.totalram = v.total;
  s.freeram = v.free;
  s.sharedram = v.shared;
  s.totalswap = v.swap_total;
  s.freeswap = v.swap_free;
  s.procs = static_cast<unsigned short>(v.procs);
  s.mem_unit = 1;
  return std::string(reinterpret_cast<const char*>(&s), sizeof(s));
}

absl::StatusOr<int64_t> ContainerUptime(pid_t tid, pid_t init_pid) {
  pid_t who = tid;
  // The init's start time, if it is still the container's init (in the
  // task's pid namespace); else the task's own.
  if (init_pid > 0 && PidNsInode(init_pid) != 0 && PidNsInode(init_pid) == PidNsInode(tid)) {
    who = init_pid;
  }
  SA_ASSIGN_OR_RETURN(uint64_t ticks, StartTicks(who));
  const long hz = sysconf(_SC_CLK_TCK);
  struct timespec now;
  if (clock_gettime(CLOCK_BOOTTIME, &now) != 0) return ErrnoStatus(errno, "clock_gettime");
  const int64_t up =
      static_cast<int64_t>(now.tv_sec) - static_cast<int64_t>(ticks / (hz > 0 ? hz : 100));
  return std::max<int64_t>(up, 0);
}

absl::StatusOr<Outcome> ReplyPrivileged(UnotifyInterface& u, int listener, uint64_t id, bool allow,
                                        int error, std::string result) {
  return Reply(u, listener, id, allow ? SECCOMP_USER_NOTIF_FLAG_CONTINUE : 0, allow ? 0 : error,
               std::move(result));
}

absl::StatusOr<Outcome> AnswerSysinfo(UnotifyInterface& u, int listener, const seccomp_notif& notif,
                                      pid_t init_pid) {
  const pid_t tid = static_cast<pid_t>(notif.pid);
  SA_ASSIGN_OR_RETURN(CgroupMemory cg, ReadTaskCgroupMemory(tid));
  struct sysinfo host;
  if (sysinfo(&host) != 0) return ErrnoStatus(errno, "sysinfo");
  SA_ASSIGN_OR_RETURN(int64_t up, ContainerUptime(tid, init_pid));
  SA_ASSIGN_OR_RETURN(std::string bytes, BuildSysinfo(notif.data.arch, cg, host, up));
  // Opened before the id check: the fd holds the task's mm, so the write
  // below can only reach the address space of the task that was waiting.
  UniqueFd mem(open(absl::StrCat("/proc/", tid, "/mem").c_str(), O_WRONLY | O_CLOEXEC));
  if (!mem) {
    const int err = errno;
    if (!u.IdValid(listener, notif.id).ok()) return Gone();
    return ErrnoStatus(err, absl::StrCat("open /proc/", tid, "/mem"));
  }
  if (!u.IdValid(listener, notif.id).ok()) return Gone();
  const uint64_t addr = notif.data.args[0];
  ssize_t n = -1;
  errno = EFAULT;
  if (addr <= static_cast<uint64_t>(INT64_MAX) - bytes.size()) {
    n = pwrite(mem.get(), bytes.data(), bytes.size(), static_cast<off_t>(addr));
  }
  if (n != static_cast<ssize_t>(bytes.size())) {
    return Reply(u, listener, notif.id, 0, EFAULT,
                 absl::StrCat("EFAULT (write at 0x", absl::Hex(addr), ": ",
                              n < 0 ? ErrnoName(errno) : "short", ")"));
  }
  const Values v = ValuesOf(cg, host);
  return Reply(
      u, listener, notif.id, 0, 0,
      absl::StrCat("0 (cgroup v", cg.version, " ", cg.path, ": totalram ", v.total, " freeram ",
                   v.free, " totalswap ", v.swap_total, " procs ", v.procs, " uptime ", up, "s)"));
}

namespace {

struct PathSplit {
  std::string parent;  // "." for a bare name
  std::string name;
  int error = 0;  // set when the path itself decides (ENOENT, EEXIST)
};

PathSplit SplitPath(const std::string& path) {
  PathSplit r;
  if (path.empty() || path.back() == '/') {
    r.error = path == "/" ? EEXIST : ENOENT;  // mknod("x/"): no non-directory with a slash
    return r;
  }
  const size_t slash = path.rfind('/');
  r.parent = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  r.name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (r.name == "." || r.name == "..") r.error = EEXIST;
  return r;
}

// In the task's context: the parent without magic links, then the node.
int MakeNodeAt(int base, const PathSplit& req, mode_t mode, dev_t dev, std::string* note) {
  open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_MAGICLINKS;
  int fd = -1;
  for (int i = 0; i < 4; ++i) {  // EAGAIN: a rename raced ".." (openat2's own check)
    fd = static_cast<int>(syscall(SYS_openat2, base, req.parent.c_str(), &how, sizeof(how)));
    if (fd >= 0 || errno != EAGAIN) break;
  }
  if (fd < 0) return errno;
  UniqueFd parent(fd);
  if (mknodat(parent.get(), req.name.c_str(), mode, dev) != 0) return errno;
  struct stat st;
  if (fstatat(parent.get(), req.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    *note = absl::StrFormat("mode %04o uid %u gid %u", st.st_mode & 07777, st.st_uid, st.st_gid);
  }
  return 0;
}

}  // namespace

absl::StatusOr<Outcome> CreateNode(UnotifyInterface& u, int listener, const seccomp_notif& notif,
                                   const NodeRequest& req) {
  const PathSplit where = SplitPath(req.path);
  if (where.error != 0) return Reply(u, listener, notif.id, 0, where.error, ErrnoName(where.error));
  const int dirfd = req.dirfd;
  const bool relative = req.path[0] != '/';

  const pid_t tid = static_cast<pid_t>(notif.pid);
  SA_ASSIGN_OR_RETURN(TaskCreds creds, ReadTaskCreds(tid));
  creds.grant_caps = uint64_t{1} << CAP_MKNOD;
  SA_ASSIGN_OR_RETURN(TaskFs fs, OpenTaskFs(tid, relative && dirfd == AT_FDCWD));
  UniqueFd task_dirfd;
  if (relative && dirfd != AT_FDCWD) {
    SA_ASSIGN_OR_RETURN(UniqueFd pidfd, OpenTaskPidfd(creds));
    absl::StatusOr<UniqueFd> d = GetTaskFd(pidfd.get(), dirfd);
    if (ErrnoOf(d.status()) == EBADF) return Reply(u, listener, notif.id, 0, EBADF, "EBADF");
    if (!d.ok()) return d.status();
    task_dirfd = std::move(*d);
  }
  int err = 0;
  bool gone = false;
  std::string note;
  SA_RETURN_IF_ERROR(RunAsTask(creds, FsContext{fs.root, fs.cwd.get()}, [&] {
    if (!u.IdValid(listener, notif.id).ok()) {  // before the side effect
      gone = true;
      return;
    }
    err = MakeNodeAt(task_dirfd ? task_dirfd.get() : AT_FDCWD, where, req.mode, req.dev, &note);
  }));
  if (gone) return Gone();
  if (err != 0) {
    return Reply(u, listener, notif.id, 0, err, absl::StrCat(ErrnoName(err), " (", req.what, ")"));
  }
  return Reply(u, listener, notif.id, 0, 0, absl::StrCat("0 (created ", req.what, " ", note, ")"));
}

namespace {

// Runs in the child (a fork of a threaded process: raw syscalls only, no
// allocation). `pidns`: the task's pid namespace, for procfs. Returns 0 or
// an errno.
int MountAt(const MountRequest& req, int target, int pidns) {
  int fs = fsopen(req.fstype.c_str(), FSOPEN_CLOEXEC);
  if (fs < 0) return errno;
  if (fsconfig(fs, FSCONFIG_SET_STRING, "source", req.fstype.c_str(), 0) != 0) return errno;
  // procfs shows the pid namespace named here, not the mounter's (the
  // child stays in the agent's: nothing of the agent enters the container's).
  if (req.fstype == "proc" && fsconfig(fs, FSCONFIG_SET_FD, "pidns", nullptr, pidns) != 0) {
    return errno;
  }
  for (const auto& [k, v] : req.options) {
    const int r = v.empty() ? fsconfig(fs, FSCONFIG_SET_FLAG, k.c_str(), nullptr, 0)
                            : fsconfig(fs, FSCONFIG_SET_STRING, k.c_str(), v.c_str(), 0);
    if (r != 0) return errno;
  }
  if (fsconfig(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) return errno;
  int mnt = fsmount(fs, FSMOUNT_CLOEXEC, static_cast<unsigned int>(req.attrs));
  if (mnt < 0) return errno;
  if (move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
    return errno;
  }
  return 0;
}

}  // namespace

absl::StatusOr<Outcome> MountInTask(UnotifyInterface& u, int listener, const seccomp_notif& notif,
                                    const MountRequest& req) {
  if (req.target.empty()) return Reply(u, listener, notif.id, 0, ENOENT, "ENOENT (empty target)");
  const pid_t tid = static_cast<pid_t>(notif.pid);
  const bool relative = req.target[0] != '/';
  SA_ASSIGN_OR_RETURN(TaskCreds creds, ReadTaskCreds(tid));
  SA_ASSIGN_OR_RETURN(TaskFs fs, OpenTaskFs(tid, relative));

  // The namespaces, opened before the id check (the fds pin them).
  SA_ASSIGN_OR_RETURN(TaskMounts mounts,
                      PrepareTaskMounts(u, listener, notif, true, true, req.scope));
  if (mounts.done) return *std::move(mounts.done);
  const std::string pidns_path = absl::StrCat("/proc/", tid, "/ns/pid");
  UniqueFd pidns(open(pidns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!pidns) {
    if (!u.IdValid(listener, notif.id).ok()) return Gone();
    return ErrnoStatus(errno, absl::StrCat("open ", pidns_path));
  }

  // The target, looked up as the task.
  int lookup_err = 0;
  UniqueFd target;
  SA_RETURN_IF_ERROR(RunAsTask(creds, FsContext{fs.root, fs.cwd.get()}, [&] {
    open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_MAGICLINKS;
    int fd = -1;
    for (int i = 0; i < 4; ++i) {
      fd = static_cast<int>(syscall(SYS_openat2, AT_FDCWD, req.target.c_str(), &how, sizeof(how)));
      if (fd >= 0 || errno != EAGAIN) break;
    }
    if (fd < 0) lookup_err = errno;
    target.reset(fd);
  }));
  if (lookup_err != 0) {
    return Reply(u, listener, notif.id, 0, lookup_err,
                 absl::StrCat(ErrnoName(lookup_err), " (target lookup)"));
  }
  MountInfoLine line;
  SA_ASSIGN_OR_RETURN(std::optional<Outcome> refused,
                      CheckTaskMount(u, listener, notif.id, mounts.mountinfo, target.get(),
                                     "target", /*refuse_shared=*/true, &line));
  if (refused) return *std::move(refused);
  if (!u.IdValid(listener, notif.id).ok()) return Gone();  // before the side effect

  // Raw syscalls only in the child (the agent is threaded).
  const int err =
      RunInNamespaces(mounts.nss, [&] { return MountAt(req, target.get(), pidns.get()); });
  if (err != 0) {
    return Reply(u, listener, notif.id, 0, err, absl::StrCat(ErrnoName(err), " (", req.what, ")"));
  }
  return Reply(u, listener, notif.id, 0, 0, absl::StrCat("0 (mounted ", req.what, ")"));
}

namespace {

constexpr int64_t kFuseSuperMagic = 0x65735546;

// The file the task named, looked up as the task (see the top of
// privileged.h), or the errno its own call would have failed with.
struct XattrTarget {
  UniqueFd fd;
  int error = 0;
};

absl::StatusOr<XattrTarget> LookUpXattrTarget(const XattrRequest& req, const TaskCreds& creds,
                                              const TaskFs& fs) {
  XattrTarget t;
  if (req.path.empty()) {
    t.error = ENOENT;
    return t;
  }
  SA_RETURN_IF_ERROR(RunAsTask(creds, FsContext{fs.root, fs.cwd.get()}, [&] {
    open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_PATH | O_CLOEXEC | (req.follow ? 0 : O_NOFOLLOW);
    how.resolve = RESOLVE_NO_MAGICLINKS;
    int fd = -1;
    for (int i = 0; i < 4; ++i) {  // EAGAIN: a rename raced ".." (openat2's own check)
      fd = static_cast<int>(syscall(SYS_openat2, AT_FDCWD, req.path.c_str(), &how, sizeof(how)));
      if (fd >= 0 || errno != EAGAIN) break;
    }
    if (fd < 0) t.error = errno;
    t.fd.reset(fd);
  }));
  return t;
}

XattrTarget TaskXattrFd(int task_fd, const TaskCreds& creds) {
  XattrTarget t;
  absl::StatusOr<UniqueFd> pidfd = OpenTaskPidfd(creds);
  if (!pidfd.ok()) {
    t.error = ESRCH;
    return t;
  }
  absl::StatusOr<UniqueFd> fd = GetTaskFd(pidfd->get(), task_fd);
  if (!fd.ok()) {
    t.error = ErrnoOf(fd.status()) == EBADF ? EBADF : ESRCH;
    return t;
  }
  const int fl = fcntl(fd->get(), F_GETFL);
  if (fl < 0 || (fl & O_PATH)) {
    t.error = EBADF;  // fsetxattr on an O_PATH fd
    return t;
  }
  t.fd = *std::move(fd);
  return t;
}

// The checks the file must pass before the agent acts (privileged.h), or
// the one it failed. `mountinfo`: the task's /proc/TID/mountinfo.
std::string CheckXattrTarget(int fd, bool symlink_ok, const TaskCreds& creds,
                             absl::string_view mountinfo, std::string* note) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_UID | STATX_INO | STATX_MNT_ID, &stx) != 0) {
    return absl::StrCat("statx: ", ErrnoName(errno));
  }
  if (!(stx.stx_mask & STATX_MNT_ID)) return "statx gave no mount id";
  const mode_t type = stx.stx_mode & S_IFMT;
  if (type != S_IFDIR && type != S_IFREG && !(symlink_ok && type == S_IFLNK)) {
    return absl::StrFormat("the file is not a directory or regular file (mode %06o)", stx.stx_mode);
  }
  if (stx.stx_uid != creds.fsuid) {
    return absl::StrCat("uid ", creds.fsuid, " does not own the file (owner ", stx.stx_uid, ")");
  }
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) return absl::StrCat("fstatfs: ", ErrnoName(errno));
  if (sfs.f_type == PROC_SUPER_MAGIC || sfs.f_type == kFuseSuperMagic) {
    return "the file is on procfs or FUSE";
  }
  if (!FindMount(mountinfo, stx.stx_mnt_id).found) {
    return "the file's mount is not one the task sees from its root";
  }
  const char* kind = type == S_IFDIR ? "dir" : type == S_IFLNK ? "symlink" : "file";
  *note = absl::StrFormat("%s inode %u uid %u", kind, stx.stx_ino, stx.stx_uid);
  return "";
}

}  // namespace

absl::StatusOr<Outcome> SetXattrAsTask(UnotifyInterface& u, int listener,
                                       const seccomp_notif& notif, const XattrRequest& req) {
  const pid_t tid = static_cast<pid_t>(notif.pid);
  SA_ASSIGN_OR_RETURN(TaskCreds creds, ReadTaskCreds(tid));
  XattrTarget target;
  if (req.by_fd) {
    target = req.fd < 0 ? XattrTarget{{}, EBADF} : TaskXattrFd(req.fd, creds);
  } else {
    SA_ASSIGN_OR_RETURN(TaskFs fs, OpenTaskFs(tid, !req.path.empty() && req.path[0] != '/'));
    SA_ASSIGN_OR_RETURN(target, LookUpXattrTarget(req, creds, fs));
  }
  if (target.error == ESRCH && !u.IdValid(listener, notif.id).ok()) return Gone();
  if (target.error != 0) {
    return Reply(u, listener, notif.id, 0, target.error,
                 absl::StrCat(ErrnoName(target.error), " (lookup)"));
  }
  absl::StatusOr<std::string> mountinfo = ReadMountInfo(tid);
  if (!mountinfo.ok()) {
    if (!u.IdValid(listener, notif.id).ok()) return Gone();
    return mountinfo.status();
  }
  std::string note;
  const std::string refusal =
      CheckXattrTarget(target.fd.get(), !req.follow && !req.by_fd, creds, *mountinfo, &note);
  if (!refusal.empty()) {
    return Reply(u, listener, notif.id, 0, EPERM, absl::StrCat("EPERM (", refusal, ")"));
  }
  if (req.by_fd) note = absl::StrCat("fd ", req.fd, ": ", note);
  // In the agent's root (its own /proc), as the task plus CAP_SYS_ADMIN.
  creds.grant_caps = uint64_t{1} << CAP_SYS_ADMIN;
  const std::string via = absl::StrCat("/proc/thread-self/fd/", target.fd.get());
  int err = 0;
  bool gone = false;
  SA_RETURN_IF_ERROR(RunAsTask(creds, FsContext{}, [&] {
    if (!u.IdValid(listener, notif.id).ok()) {  // before the side effect
      gone = true;
      return;
    }
    if (setxattr(via.c_str(), req.name.c_str(), req.value.data(), req.value.size(), req.flags) !=
        0) {
      err = errno;
    }
  }));
  if (gone) return Gone();
  if (err != 0) {
    return Reply(u, listener, notif.id, 0, err,
                 absl::StrCat(ErrnoName(err), " (", req.what, " on ", note, ")"));
  }
  return Reply(u, listener, notif.id, 0, 0, absl::StrCat("0 (set ", req.what, " on ", note, ")"));
}

}  // namespace seccomp_agent::injector
