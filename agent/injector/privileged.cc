#include "agent/injector/privileged.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "agent/common/fd.h"
#include "agent/common/status.h"
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
  auto scaled = [&](uint64_t x) { return static_cast<uint32_t>(std::min<uint64_t>(x / unit, UINT32_MAX)); };
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
  std::vector<absl::string_view> f =
      absl::StrSplit(absl::string_view(text).substr(close + 2), ' ');
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

absl::StatusOr<Outcome> Reply(UnotifyInterface& u, int listener, uint64_t id, uint32_t flags,
                              int error, std::string result) {
  seccomp_notif_resp resp;
  memset(&resp, 0, sizeof(resp));
  resp.id = id;
  resp.flags = flags;
  resp.error = -error;
  absl::Status s = u.Send(listener, resp);
  Outcome o;
  o.backend = kBackendAgent;
  if (ErrnoOf(s) == ENOENT) {
    o.task_gone = true;
    o.result = "task-gone";
    return o;
  }
  if (!s.ok()) return s;
  o.known_value = true;
  o.error = error;
  o.result = std::move(result);
  return o;
}

Outcome Gone() {
  Outcome o;
  o.backend = kBackendAgent;
  o.task_gone = true;
  o.result = "task-gone";
  return o;
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
  const int64_t up = static_cast<int64_t>(now.tv_sec) - static_cast<int64_t>(ticks / (hz > 0 ? hz : 100));
  return std::max<int64_t>(up, 0);
}

absl::StatusOr<Outcome> ReplyPrivileged(UnotifyInterface& u, int listener, uint64_t id,
                                        bool allow, int error, std::string result) {
  return Reply(u, listener, id, allow ? SECCOMP_USER_NOTIF_FLAG_CONTINUE : 0, allow ? 0 : error,
               std::move(result));
}

absl::StatusOr<Outcome> AnswerSysinfo(UnotifyInterface& u, int listener,
                                      const seccomp_notif& notif, pid_t init_pid) {
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
  return Reply(u, listener, notif.id, 0, 0,
               absl::StrCat("0 (cgroup v", cg.version, " ", cg.path, ": totalram ", v.total,
                            " freeram ", v.free, " totalswap ", v.swap_total, " procs ", v.procs,
                            " uptime ", up, "s)"));
}

namespace {

struct PathSplit {
  std::string parent;  // "." for a bare name
  std::string name;
  int error = 0;       // set when the path itself decides (ENOENT, EEXIST)
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

}  // namespace seccomp_agent::injector
