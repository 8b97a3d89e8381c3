#include "agent/injector/task_context.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "agent/common/proc_text.h"
#include "agent/common/read_file.h"
#include "agent/common/status.h"
#include "agent/seccomp/task_path.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

namespace seccomp_agent::injector {
namespace {

// The user namespace a /proc/N/ns/user link names ("user:[4026531837]"):
// readlink, not stat. stat follows the link into nsfs (a dentry found or
// made in the namespace's stash, every call) and cost 3-5 us per emulated
// call on the bench host; readlink formats the name (1.5-2 us). Both check
// ptrace access the same way.
absl::StatusOr<std::string> UserNsName(const char* path) {
  char buf[64];
  ssize_t n = readlink(path, buf, sizeof(buf));
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf)) {
    return ErrnoStatus(n < 0 ? errno : EINVAL, absl::StrCat("readlink ", path));
  }
  return std::string(buf, static_cast<size_t>(n));
}

// Fourth field of "r\te\ts\tfs".
bool FourthId(absl::string_view value, uint32_t* out) {
  for (int i = 0; i < 3; ++i) {
    size_t tab = value.find_first_of(" \t");
    if (tab == absl::string_view::npos) return false;
    value.remove_prefix(tab);
    while (!value.empty() && (value[0] == ' ' || value[0] == '\t')) value.remove_prefix(1);
  }
  size_t end = value.find_first_of(" \t");
  if (end != absl::string_view::npos) {
    // Nothing but blanks may follow the fourth id.
    if (value.find_first_not_of(" \t", end) != absl::string_view::npos) return false;
    value = value.substr(0, end);
  }
  return absl::SimpleAtoi(value, out);
}

// /proc/TID/status, whole, in one open and (nearly always) one read: it is
// a single_open seq_file, generated at once, so a read that returns less
// than asked has returned the rest of it (no second read to see EOF). This
// is on every emulated call; the buffer is the thread's own, reused.
}  // namespace

absl::StatusOr<TaskCreds> ReadTaskCreds(pid_t tid) {
  char path[48];
  snprintf(path, sizeof(path), "/proc/%d/status", static_cast<int>(tid));
  thread_local std::string text;
  SA_RETURN_IF_ERROR(ReadWholeFile(AT_FDCWD, path, text));
  TaskCreds c;
  c.tid = tid;
  int seen = 0;
  ForEachStatusField(text, [&](absl::string_view key, absl::string_view value) {
    uint32_t v;
    if (key == "Tgid" && absl::SimpleAtoi(value, &v)) {
      c.tgid = static_cast<pid_t>(v);
      seen |= 1;
    } else if (key == "Uid" && FourthId(value, &v)) {
      c.fsuid = v;
      seen |= 2;
    } else if (key == "Gid" && FourthId(value, &v)) {
      c.fsgid = v;
      seen |= 4;
    } else if (key == "Groups") {
      for (absl::string_view g : absl::StrSplit(value, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
        if (absl::SimpleAtoi(g, &v)) c.groups.push_back(v);
      }
      seen |= 8;
    } else if (key == "CapEff") {
      if (absl::SimpleHexAtoi(value, &c.cap_eff)) seen |= 16;
      return false;  // the last field wanted (Umask comes first); skip the rest
    } else if (key == "Umask") {
      uint32_t m = 0;
      for (char ch : value) m = m * 8 + (ch - '0');
      c.umask = m & 0777;
    }
    return true;
  });
  if (seen != 31) {
    return absl::InternalError(absl::StrCat(path, ": missing Tgid/Uid/Gid/Groups/CapEff"));
  }
  // The agent's own user namespace never changes (a multi-threaded process
  // cannot setns() into another one).
  static const absl::StatusOr<std::string> mine = UserNsName("/proc/self/ns/user");
  // Only consulted to grant capabilities: a task without any needs no look.
  if (c.cap_eff == 0) {
    c.same_user_ns = false;
    return c;
  }
  snprintf(path, sizeof(path), "/proc/%d/ns/user", static_cast<int>(tid));
  absl::StatusOr<std::string> theirs = UserNsName(path);
  if (!theirs.ok()) return theirs.status();
  c.same_user_ns = mine.ok() && *mine == *theirs;
  return c;
}

absl::StatusOr<UniqueFd> OpenTaskPidfd(const TaskCreds& creds) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, creds.tid, PIDFD_THREAD));
  if (fd < 0 && errno == EINVAL) fd = static_cast<int>(syscall(SYS_pidfd_open, creds.tgid, 0));
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("pidfd_open ", creds.tid));
  return UniqueFd(fd);
}

absl::StatusOr<UniqueFd> GetTaskFd(int pidfd, int targetfd) {
  int fd = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, targetfd, 0));
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("pidfd_getfd ", targetfd));
  return UniqueFd(fd);
}

absl::StatusOr<TaskFs> OpenTaskFs(pid_t tid, bool want_cwd) {
  TaskFs fs;
  SA_ASSIGN_OR_RETURN(fs.root, TaskRootFd(tid, fs.root_owned));
  if (want_cwd) {
    std::string cwd = absl::StrCat("/proc/", tid, "/cwd");
    fs.cwd.reset(open(cwd.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fs.cwd) return ErrnoStatus(errno, absl::StrCat("open ", cwd));
  }
  return fs;
}

namespace {

// The calling thread's own fs_struct: unshare(CLONE_FS) once per thread, on
// its first RunAsTask that needs a root or cwd, and the root and cwd it had
// then (the process's: the agent never chdir()s, chroot()s or umask()s
// anywhere else), to return to after every call.
struct PrivateFs {
  bool unshared = false;
  UniqueFd root;  // O_PATH "/" as the thread's baseline root
  UniqueFd cwd;   // O_PATH "." as the thread's baseline cwd
};
thread_local PrivateFs tls_fs;

absl::Status EnsurePrivateFs() {
  // Every call, not only the first: a thread this one created after its
  // first unshare (clone with CLONE_FS) shares its fs_struct and would see
  // the task's root and cwd while we stand there. With no other user the
  // kernel makes no copy (a cheap no-op); otherwise this thread gets a
  // private copy of its current state, which is its baseline (the last
  // call restored it), so the baseline fds below stay right.
  if (unshare(CLONE_FS) != 0) return ErrnoStatus(errno, "unshare(CLONE_FS)");
  if (tls_fs.unshared) return absl::OkStatus();
  UniqueFd root(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoStatus(errno, "open / (baseline root)");
  UniqueFd cwd(open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cwd) return ErrnoStatus(errno, "open . (baseline cwd)");
  tls_fs.root = std::move(root);
  tls_fs.cwd = std::move(cwd);
  tls_fs.unshared = true;
  return absl::OkStatus();
}

// The calling thread's credentials as RunAsTask first found them (the agent
// never changes a thread's credentials anywhere else, and every call ends
// by restoring and verifying exactly these).
struct CredBaseline {
  bool captured = false;
  uid_t fsuid = 0;
  gid_t fsgid = 0;
  std::vector<gid_t> groups;
  __user_cap_data_struct caps[2] = {};
};
thread_local CredBaseline tls_cred;

uint64_t Effective(const __user_cap_data_struct* d) {
  return d[0].effective | (uint64_t{d[1].effective} << 32);
}

absl::Status EnsureCredBaseline() {
  CredBaseline& b = tls_cred;
  if (b.captured) return absl::OkStatus();
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  if (syscall(SYS_capget, &hdr, b.caps) != 0) return ErrnoStatus(errno, "capget");
  b.fsuid = static_cast<uid_t>(syscall(SYS_setfsuid, -1));
  b.fsgid = static_cast<gid_t>(syscall(SYS_setfsgid, -1));
  int n = static_cast<int>(syscall(SYS_getgroups, 0, nullptr));
  if (n < 0) return ErrnoStatus(errno, "getgroups");
  b.groups.resize(static_cast<size_t>(n));
  n = static_cast<int>(syscall(SYS_getgroups, n, b.groups.data()));
  if (n < 0) return ErrnoStatus(errno, "getgroups");
  b.groups.resize(static_cast<size_t>(n));
  b.captured = true;
  return absl::OkStatus();
}

// What RunAsTask changed, so that only that is put back.
struct Changed {
  bool fs = false;    // umask or cwd changed
  bool root = false;  // chroot'ed (only then is chroot needed to go back)
  mode_t old_umask = 0;
  bool groups = false, fsgid = false, fsuid = false, caps = false;
};

// Puts the calling thread back exactly as it was: credentials first (the
// agent's capabilities are needed for setgroups, setfs[ug]id and chroot),
// then root, cwd and umask. Every step is verified. A thread that cannot be
// restored would go on deciding with a container's root or credentials, so
// that is fatal: the agent aborts rather than run on (fail closed).
void RestoreOrDie(const Changed& c) {
  const CredBaseline& b = tls_cred;
  const bool any_cred = c.groups || c.fsgid || c.fsuid || c.caps;
  const char* what = nullptr;
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[2];
  memcpy(caps, b.caps, sizeof(caps));
  __user_cap_data_struct now[2];
  if (any_cred && syscall(SYS_capset, &hdr, caps) != 0) {
    what = "capset";
  } else if (c.groups && syscall(SYS_setgroups, b.groups.size(), b.groups.data()) != 0) {
    what = "setgroups";
  } else if (c.fsgid && (syscall(SYS_setfsgid, b.fsgid),
                         static_cast<gid_t>(syscall(SYS_setfsgid, -1)) != b.fsgid)) {
    what = "setfsgid";
  } else if (c.fsuid && (syscall(SYS_setfsuid, b.fsuid),
                         static_cast<uid_t>(syscall(SYS_setfsuid, -1)) != b.fsuid)) {
    what = "setfsuid";
  } else if (c.fsuid && syscall(SYS_capset, &hdr, caps) != 0) {
    // Again: going back to fsuid 0 may have raised the fs capabilities.
    what = "capset";
  } else if (any_cred &&
             (syscall(SYS_capget, &hdr, now) != 0 || Effective(now) != Effective(b.caps))) {
    what = "capget (effective set differs)";
  } else if (c.fs) {
    if (c.root && (fchdir(tls_fs.root.get()) != 0 || chroot(".") != 0)) {
      what = "chroot(baseline root)";
    } else if (fchdir(tls_fs.cwd.get()) != 0) {
      what = "fchdir(baseline cwd)";
    } else {
      umask(c.old_umask);
    }
  }
  if (what != nullptr) {
    fprintf(stderr, "injector: cannot restore the thread after emulation: %s: %s\n", what,
            strerror(errno));
    abort();
  }
}

}  // namespace

absl::Status RunAsTask(const TaskCreds& creds, const FsContext& fs,
                       const std::function<void()>& fn) {
  const bool want_fs = fs.root_fd >= 0 || fs.cwd_fd >= 0;
  if (want_fs) SA_RETURN_IF_ERROR(EnsurePrivateFs());
  SA_RETURN_IF_ERROR(EnsureCredBaseline());
  const CredBaseline& base = tls_cred;

  // From here on the thread is restored whatever happens. A credential that
  // already has the task's value is left alone (setting it again would be
  // a no-op), so is not restored either.
  Changed changed;
  absl::Status setup = [&]() -> absl::Status {
    if (want_fs) {
      changed.old_umask = umask(creds.umask);
      changed.fs = true;
      if (fs.root_fd >= 0) {
        if (fchdir(fs.root_fd) != 0) return ErrnoStatus(errno, "fchdir(task root)");
        if (chroot(".") != 0) return ErrnoStatus(errno, "chroot(task root)");
        changed.root = true;
      }
      if (fs.cwd_fd >= 0 && fchdir(fs.cwd_fd) != 0) return ErrnoStatus(errno, "fchdir(task cwd)");
    }
    if (creds.groups != base.groups) {
      changed.groups = true;
      if (syscall(SYS_setgroups, creds.groups.size(), creds.groups.data()) != 0) {
        return ErrnoStatus(errno, "setgroups");
      }
    }
    if (creds.fsgid != base.fsgid) {
      changed.fsgid = true;
      syscall(SYS_setfsgid, creds.fsgid);
      if (static_cast<gid_t>(syscall(SYS_setfsgid, -1)) != creds.fsgid) {
        return ErrnoStatus(EPERM, "setfsgid");
      }
    }
    if (creds.fsuid != base.fsuid) {
      changed.fsuid = true;
      syscall(SYS_setfsuid, creds.fsuid);
      if (static_cast<uid_t>(syscall(SYS_setfsuid, -1)) != creds.fsuid) {
        return ErrnoStatus(EPERM, "setfsuid");
      }
    }
    __user_cap_data_struct data[2];
    memcpy(data, base.caps, sizeof(data));
    const uint64_t permitted = data[0].permitted | (uint64_t{data[1].permitted} << 32);
    const uint64_t eff = ((creds.same_user_ns ? creds.cap_eff : 0) | creds.grant_caps) & permitted;
    // A change of fsuid adjusted the fs capabilities: then always capset.
    if (eff != Effective(base.caps) || changed.fsuid) {
      changed.caps = true;
      __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
      data[0].effective = static_cast<uint32_t>(eff);
      data[1].effective = static_cast<uint32_t>(eff >> 32);
      if (syscall(SYS_capset, &hdr, data) != 0) return ErrnoStatus(errno, "capset");
    }
    return absl::OkStatus();
  }();
  if (setup.ok()) fn();
  RestoreOrDie(changed);
  return setup;
}

}  // namespace seccomp_agent::injector
