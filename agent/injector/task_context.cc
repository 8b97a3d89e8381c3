#include "agent/injector/task_context.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/status.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

namespace seccomp_agent::injector {
namespace {

absl::StatusOr<uint64_t> UserNsInode(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", path));
  return static_cast<uint64_t>(st.st_ino);
}

// Fourth field of "Uid:\tr\te\ts\tfs".
bool FourthId(absl::string_view value, uint32_t* out) {
  std::vector<absl::string_view> f = absl::StrSplit(value, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  return f.size() == 4 && absl::SimpleAtoi(f[3], out);
}

}  // namespace

absl::StatusOr<TaskCreds> ReadTaskCreds(pid_t tid) {
  const std::string path = absl::StrCat("/proc/", tid, "/status");
  std::ifstream in(path);
  if (!in) return ErrnoStatus(errno ? errno : ESRCH, absl::StrCat("open ", path));
  TaskCreds c;
  c.tid = tid;
  int seen = 0;
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    absl::string_view key(line.data(), colon);
    absl::string_view value = absl::StripAsciiWhitespace(absl::string_view(line).substr(colon + 1));
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
      for (absl::string_view g : absl::StrSplit(value, ' ', absl::SkipEmpty())) {
        if (absl::SimpleAtoi(g, &v)) c.groups.push_back(v);
      }
      seen |= 8;
    } else if (key == "CapEff") {
      if (!absl::SimpleHexAtoi(value, &c.cap_eff)) break;
      seen |= 16;
    } else if (key == "Umask") {
      uint32_t m = 0;
      for (char ch : value) m = m * 8 + (ch - '0');
      c.umask = m & 0777;
    }
  }
  if (seen != 31) {
    return absl::InternalError(absl::StrCat(path, ": missing Tgid/Uid/Gid/Groups/CapEff"));
  }
  auto mine = UserNsInode("/proc/self/ns/user");
  auto theirs = UserNsInode(absl::StrCat("/proc/", tid, "/ns/user"));
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
  std::string root = absl::StrCat("/proc/", tid, "/root");
  fs.root.reset(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fs.root) return ErrnoStatus(errno, absl::StrCat("open ", root));
  if (want_cwd) {
    std::string cwd = absl::StrCat("/proc/", tid, "/cwd");
    fs.cwd.reset(open(cwd.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fs.cwd) return ErrnoStatus(errno, absl::StrCat("open ", cwd));
  }
  return fs;
}

absl::Status RunAsTask(const TaskCreds& creds, const FsContext& fs,
                       const std::function<void()>& fn) {
  absl::Status setup;
  std::thread helper([&] {
    auto fail = [&](const char* what) { setup = ErrnoStatus(errno, what); };
    if (fs.root_fd >= 0 || fs.cwd_fd >= 0) {
      if (unshare(CLONE_FS) != 0) return fail("unshare(CLONE_FS)");
      if (fs.root_fd >= 0) {
        if (fchdir(fs.root_fd) != 0) return fail("fchdir(task root)");
        if (chroot(".") != 0) return fail("chroot(task root)");
      }
      if (fs.cwd_fd >= 0 && fchdir(fs.cwd_fd) != 0) return fail("fchdir(task cwd)");
      umask(creds.umask);
    }
    if (syscall(SYS_setgroups, creds.groups.size(), creds.groups.data()) != 0) {
      return fail("setgroups");
    }
    syscall(SYS_setfsgid, creds.fsgid);
    if (static_cast<gid_t>(syscall(SYS_setfsgid, -1)) != creds.fsgid) {
      errno = EPERM;
      return fail("setfsgid");
    }
    syscall(SYS_setfsuid, creds.fsuid);
    if (static_cast<uid_t>(syscall(SYS_setfsuid, -1)) != creds.fsuid) {
      errno = EPERM;
      return fail("setfsuid");
    }
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) != 0) return fail("capget");
    uint64_t permitted = data[0].permitted | (uint64_t{data[1].permitted} << 32);
    uint64_t eff = (creds.same_user_ns ? creds.cap_eff : 0) & permitted;
    data[0].effective = static_cast<uint32_t>(eff);
    data[1].effective = static_cast<uint32_t>(eff >> 32);
    if (syscall(SYS_capset, &hdr, data) != 0) return fail("capset");
    fn();
  });
  helper.join();
  return setup;
}

}  // namespace seccomp_agent::injector
