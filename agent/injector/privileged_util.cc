#include "agent/injector/privileged_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/read_file.h"
#include "agent/common/status.h"
#include "agent/injector/privileged.h"

namespace seccomp_agent::injector {

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

ino_t NsInode(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_ino;
}

namespace {

// The inode of the namespace of `type` among `nss` (0: not there).
ino_t NsFdInode(const std::vector<NsFd>& nss, int type) {
  for (const NsFd& n : nss) {
    struct stat st;
    if (n.type == type && fstat(n.fd.get(), &st) == 0) return st.st_ino;
  }
  return 0;
}

// mountinfo escapes ' ', '\t', '\n' and '\\' as \ooo.
std::string Unescape(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

MountInfoLine FindMount(absl::string_view text, uint64_t mnt_id) {
  MountInfoLine r;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    uint64_t id = 0;
    if (f.size() < 7 || !absl::SimpleAtoi(f[0], &id) || id != mnt_id) continue;
    r.found = true;
    r.mount_point = Unescape(f[4]);
    for (size_t i = 6; i < f.size() && f[i] != "-"; ++i) {
      if (absl::StartsWith(f[i], "shared:")) r.shared = true;
    }
    return r;
  }
  return r;
}

std::vector<std::string> MountPoints(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    if (f.size() >= 7) out.push_back(Unescape(f[4]));
  }
  return out;
}

absl::StatusOr<std::string> ReadMountInfo(pid_t tid) {
  std::string text;
  SA_RETURN_IF_ERROR(
      ReadWholeFile(AT_FDCWD, absl::StrCat("/proc/", tid, "/mountinfo").c_str(), text, 16 << 20));
  return text;
}

absl::StatusOr<std::vector<NsFd>> OpenTaskNamespaces(pid_t tid, bool net_ipc) {
  const std::string ns = absl::StrCat("/proc/", tid, "/ns/");
  std::vector<NsFd> nss;
  if (NsInode(ns + "user") != NsInode("/proc/self/ns/user")) {
    nss.push_back({"user", CLONE_NEWUSER, {}});
  }
  nss.push_back({"mnt", CLONE_NEWNS, {}});
  if (net_ipc) {
    nss.push_back({"net", CLONE_NEWNET, {}});
    nss.push_back({"ipc", CLONE_NEWIPC, {}});
  }
  for (NsFd& n : nss) {
    n.fd.reset(open((ns + n.name).c_str(), O_RDONLY | O_CLOEXEC));
    if (!n.fd) return ErrnoStatus(errno, absl::StrCat("open ", ns, n.name));
  }
  return nss;
}

absl::StatusOr<TaskMounts> PrepareTaskMounts(UnotifyInterface& u, int listener,
                                             const seccomp_notif& notif, bool net_ipc,
                                             bool adds_mount, const MountScope& scope) {
  const pid_t tid = static_cast<pid_t>(notif.pid);
  TaskMounts m;
  const std::string mnt = absl::StrCat("/proc/", tid, "/ns/mnt");
  if (NsInode(mnt) == 0) {
    m.done = Gone();
    return m;
  }
  if (NsInode(mnt) == NsInode("/proc/self/ns/mnt")) {
    SA_ASSIGN_OR_RETURN(m.done, Reply(u, listener, notif.id, 0, EPERM,
                                      "EPERM (the task shares the agent's mount namespace)"));
    return m;
  }
  absl::StatusOr<std::vector<NsFd>> nss = OpenTaskNamespaces(tid, net_ipc);
  if (!nss.ok()) {
    if (!u.IdValid(listener, notif.id).ok()) m.done = Gone();
    if (m.done) return m;
    return nss.status();
  }
  m.nss = *std::move(nss);
  SA_ASSIGN_OR_RETURN(m.mountinfo, ReadMountInfo(tid));
  const size_t count =
      static_cast<size_t>(std::count(m.mountinfo.begin(), m.mountinfo.end(), '\n'));
  if (adds_mount && count >= kMaxTaskMounts) {
    SA_ASSIGN_OR_RETURN(
        m.done, Reply(u, listener, notif.id, 0, EPERM,
                      absl::StrCat("EPERM (the task's mount namespace holds ", count,
                                   " mounts, the agent adds none past ", kMaxTaskMounts, ")")));
    return m;
  }
  // A namespace other than the container's own: the namespace the agent
  // would mount into is the one of the fd it holds (not re-read by path).
  if (adds_mount && scope.nested_mounts != nullptr &&
      NsFdInode(m.nss, CLONE_NEWNS) !=
          NsInode(absl::StrCat("/proc/", scope.container_init, "/ns/mnt"))) {
    const uint32_t made = scope.nested_mounts->fetch_add(1, std::memory_order_relaxed);
    if (made >= kMaxNestedMounts) {
      SA_ASSIGN_OR_RETURN(
          m.done,
          Reply(u, listener, notif.id, 0, EPERM,
                absl::StrCat("EPERM (the agent has tried ", kMaxNestedMounts,
                             " mounts in mount namespaces this container's tasks made; it tries "
                             "none past that)")));
    }
  }
  return m;
}

absl::StatusOr<std::optional<Outcome>> CheckTaskMount(UnotifyInterface& u, int listener,
                                                      uint64_t id, const std::string& mountinfo,
                                                      int fd, const char* what, bool refuse_shared,
                                                      MountInfoLine* line) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) != 0 || !(stx.stx_mask & STATX_MNT_ID)) {
    return ErrnoStatus(errno ? errno : ENOSYS, "statx STATX_MNT_ID");
  }
  *line = FindMount(mountinfo, stx.stx_mnt_id);
  if (!line->found) {
    return Reply(u, listener, id, 0, EINVAL,
                 absl::StrCat("EINVAL (the ", what, " is not in the task's mount namespace)"));
  }
  if (refuse_shared && line->shared) {
    return Reply(u, listener, id, 0, EPERM,
                 "EPERM (the target's mount is shared: a mount would propagate to its peers)");
  }
  return std::nullopt;
}

pid_t RawFork() { return static_cast<pid_t>(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0)); }

int WaitExit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ECHILD;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return EINTR;  // killed
}

}  // namespace seccomp_agent::injector
