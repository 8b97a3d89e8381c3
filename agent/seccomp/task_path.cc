#include "agent/seccomp/task_path.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <deque>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/common/proc_text.h"
#include "agent/common/read_file.h"
#include "agent/common/fd.h"
#include "agent/common/status.h"

namespace seccomp_agent {
namespace {

constexpr int kMaxLinks = 40;  // the kernel's MAXSYMLINKS

int Openat2(int dirfd, const std::string& path, int flags, uint64_t resolve) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
  how.resolve = resolve;
  return static_cast<int>(syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how)));
}

std::string Join(const std::vector<std::string>& names) {
  return names.empty() ? "/" : absl::StrCat("/", absl::StrJoin(names, "/"));
}

std::string ReadLinkAt(int dirfd, const char* name) {
  char buf[4096];
  ssize_t n = readlinkat(dirfd, name, buf, sizeof(buf));
  return n <= 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

bool SameInode(int a, int b) {
  struct stat sa, sb;
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

bool OnProcfs(int fd) {
  struct statfs s;
  return fstatfs(fd, &s) == 0 && s.f_type == PROC_SUPER_MAGIC;
}

// The task's context for one resolution.
struct Task {
  pid_t pid = 0;
  int root = -1;  // /proc/PID/root (O_PATH): the call root's, or `owned`
  UniqueFd owned;
};

thread_local CallRoot* tls_call_root = nullptr;

// Where `target` (an O_PATH fd the agent holds) is in the task's root: the
// kernel's name for it (readlink of our /proc/self/fd/N, which reads
// relative to the mount namespace's root for a container that pivot_root'ed,
// or from the agent's root otherwise, then without the root's own prefix),
// checked by inode from the task's root.
absl::StatusOr<std::string> PathInRoot(const Task& t, int target) {
  const std::string name = ReadLinkAt(AT_FDCWD, absl::StrCat("/proc/self/fd/", target).c_str());
  std::vector<std::string> candidates = {name};
  const std::string root = ReadLinkAt(AT_FDCWD, absl::StrCat("/proc/", t.pid, "/root").c_str());
  if (!root.empty() && root != "/" && absl::StartsWith(name, root) &&
      (name.size() == root.size() || name[root.size()] == '/')) {
    candidates.push_back(name.size() == root.size() ? "/" : name.substr(root.size()));
  }
  for (const std::string& c : candidates) {
    if (c.empty() || c[0] != '/') continue;
    UniqueFd f(Openat2(t.root, c, O_PATH | O_NOFOLLOW,
                       RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS));
    if (f && SameInode(f.get(), target)) return c;
  }
  return ErrnoStatus(EXDEV, absl::StrCat("\"", name, "\" is not inside the task's root"));
}

// "NStgid:\t5\t1" -> {5, 1}: the task's ids from the agent's pid namespace
// down to its own.
std::vector<std::string> NsIds(const std::string& status, absl::string_view key) {
  std::optional<absl::string_view> value = StatusField(status, key);
  if (!value) return {};
  std::vector<absl::string_view> words = StatusWords(*value);
  return std::vector<std::string>(words.begin(), words.end());
}

// Field 22 (start time) of a /proc/N/stat text.
std::string StartTime(const std::string& stat) {
  std::vector<absl::string_view> f = StatFieldsAfterComm(stat);
  return f.size() > 19 ? std::string(f[19]) : "";
}

// "self" / "thread-self" in the procfs at `proc_root`, as the task sees
// them: its tgid (and tid) in that procfs's pid namespace, recognised by the
// process's start time.
absl::StatusOr<std::vector<std::string>> TaskSelf(const Task& t, int proc_root, bool thread) {
  const std::string status = ReadFileOrEmpty(AT_FDCWD, absl::StrCat("/proc/", t.pid, "/status"));
  const std::vector<std::string> tgids = NsIds(status, "NStgid");
  const std::vector<std::string> tids = NsIds(status, "NSpid");
  const std::string start =
      StartTime(ReadFileOrEmpty(AT_FDCWD, absl::StrCat("/proc/", t.pid, "/stat")));
  for (size_t i = tgids.size(); i-- > 0 && i < tids.size();) {
    const std::string path = absl::StrCat(tgids[i], "/task/", tids[i], "/stat");
    if (!start.empty() && StartTime(ReadFileOrEmpty(proc_root, path)) == start) {
      if (!thread) return std::vector<std::string>{tgids[i]};
      return std::vector<std::string>{tgids[i], "task", tids[i]};
    }
  }
  return ErrnoStatus(ESRCH, "the task is not in the procfs mounted in its root");
}

}  // namespace

CallRootScope::CallRootScope(CallRoot* root) : prev_(tls_call_root) { tls_call_root = root; }

CallRootScope::~CallRootScope() { tls_call_root = prev_; }

absl::StatusOr<int> TaskRootFd(pid_t pid, UniqueFd& owned) {
  CallRoot* call = tls_call_root;
  const bool shared = call != nullptr && call->pid_ == pid && pid > 0;
  if (shared && call->fd_) return call->fd_.get();
  char path[40];
  snprintf(path, sizeof(path), "/proc/%d/root", static_cast<int>(pid));
  UniqueFd fd(open(path, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  UniqueFd& keep = shared ? call->fd_ : owned;
  keep = std::move(fd);
  return keep.get();
}

std::string JoinNormalize(const std::string& base, const std::string& rel) {
  std::vector<std::string> parts;
  auto push = [&parts](absl::string_view p) {
    for (absl::string_view c : absl::StrSplit(p, '/', absl::SkipEmpty())) {
      if (c == ".") continue;
      if (c == "..") {
        if (!parts.empty()) parts.pop_back();
        continue;
      }
      parts.emplace_back(c);
    }
  };
  push(base);
  push(rel);
  return Join(parts);
}

namespace {

// The component walk (see the header).
class Walker {
 public:
  Walker(const Task& t, bool follow_last) : t_(t), follow_last_(follow_last) {}

  absl::StatusOr<std::string> Run(const std::vector<std::string>& start, const std::string& path) {
    SA_RETURN_IF_ERROR(Reset(start));
    for (absl::string_view c : absl::StrSplit(path, '/', absl::SkipEmpty())) {
      todo_.emplace_back(c);
    }
    while (!todo_.empty()) {
      std::string c = std::move(todo_.front());
      todo_.pop_front();
      if (c == ".") continue;
      if (c == "..") {
        if (!names_.empty()) names_.pop_back();
        SA_RETURN_IF_ERROR(Reset(names_));
        continue;
      }
      UniqueFd next(openat(cur_.get(), c.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
      struct stat st;
      if (!next || fstat(next.get(), &st) != 0) return Lexical(c);
      if (S_ISLNK(st.st_mode) && (!todo_.empty() || follow_last_)) {
        if (++links_ > kMaxLinks) return ErrnoStatus(ELOOP, "too many links");
        SA_RETURN_IF_ERROR(FollowLink(c, next.get()));
        if (!anon_.empty()) return Lexical(anon_);
        continue;
      }
      names_.push_back(std::move(c));
      if (proc_depth_ < 0 && S_ISDIR(st.st_mode) && OnProcfs(next.get())) {
        proc_depth_ = static_cast<int>(names_.size());
      }
      cur_ = std::move(next);
    }
    return Join(names_);
  }

 private:
  // Re-opens the directory `names` from the task's root (they hold no
  // symlink: every one was resolved on the way).
  absl::Status Reset(const std::vector<std::string>& names) {
    names_ = names;
    cur_.reset(Openat2(t_.root, Join(names_), O_PATH | O_DIRECTORY,
                       RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS));
    if (!cur_)
      return ErrnoStatus(errno, absl::StrCat("open ", Join(names_), " in the task's root"));
    if (proc_depth_ > static_cast<int>(names_.size())) proc_depth_ = -1;
    if (proc_depth_ < 0 && !names_.empty() && OnProcfs(cur_.get())) {
      proc_depth_ = static_cast<int>(names_.size());  // a magic link landed in procfs
      while (proc_depth_ > 1) {  // find the mount's top: the first procfs ancestor
        UniqueFd up(Openat2(t_.root, Join({names_.begin(), names_.begin() + proc_depth_ - 1}),
                            O_PATH | O_DIRECTORY, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS));
        if (!up || !OnProcfs(up.get())) break;
        --proc_depth_;
      }
    }
    return absl::OkStatus();
  }

  // A name that does not resolve: the rest is only text. An object
  // without a path ("pipe:[12]") is that text, plus any rest.
  std::string Lexical(const std::string& c) {
    std::string rest = c;
    for (const std::string& r : todo_) absl::StrAppend(&rest, "/", r);
    if (!anon_.empty()) return rest;
    return JoinNormalize(Join(names_), rest);
  }

  absl::Status FollowLink(const std::string& c, int link) {
    const bool in_proc = proc_depth_ >= 0;
    const bool at_proc_root = in_proc && proc_depth_ == static_cast<int>(names_.size());
    if (at_proc_root && (c == "self" || c == "thread-self")) {
      SA_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                          TaskSelf(t_, cur_.get(), c == "thread-self"));
      todo_.insert(todo_.begin(), ids.begin(), ids.end());
      return absl::OkStatus();
    }
    if (in_proc && !at_proc_root) {
      // A magic link (root, cwd, exe, fd/N, ...): where it leads, in the
      // task's root. The agent follows it with its own rights (this only
      // names the file; the task's call is still checked by the kernel).
      // An object with no path (a pipe, socket, anon inode: "pipe:[12]")
      // is named by that text; nothing can follow it.
      const std::string text = ReadLinkAt(link, "");
      if (!text.empty() && text[0] != '/') {
        anon_ = text;
        return absl::OkStatus();
      }
      UniqueFd target(openat(cur_.get(), c.c_str(), O_PATH | O_CLOEXEC));
      if (!target) return ErrnoStatus(errno, absl::StrCat("follow /proc link ", c));
      SA_ASSIGN_OR_RETURN(std::string where, PathInRoot(t_, target.get()));
      return Reset(absl::StrSplit(where, '/', absl::SkipEmpty()));
    }
    const std::string text = ReadLinkAt(link, "");
    if (text.empty()) return ErrnoStatus(ENOENT, absl::StrCat("readlink ", c));
    std::vector<std::string> parts = absl::StrSplit(text, '/', absl::SkipEmpty());
    todo_.insert(todo_.begin(), parts.begin(), parts.end());
    if (text[0] == '/') return Reset({});
    return absl::OkStatus();
  }

  const Task& t_;
  const bool follow_last_;
  std::vector<std::string> names_;  // resolved components from the task's root
  UniqueFd cur_;                    // the directory names_ leads to
  std::deque<std::string> todo_;
  int links_ = 0;
  int proc_depth_ = -1;  // names_[0..proc_depth_) ends at a procfs top, or -1
  std::string anon_;     // a magic link to an object without a path
};

// Fast path: no symlink anywhere on the way (see the header).
bool NoSymlinks(const Task& t, const std::string& abs, bool follow_last) {
  constexpr uint64_t kStrict = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  // With O_NOFOLLOW a trailing symlink is handed back itself (the name is
  // the link's); without it RESOLVE_NO_SYMLINKS refuses a trailing symlink
  // with ELOOP, and the walk follows it. No fstat needed either way.
  UniqueFd f(Openat2(t.root, abs, O_PATH | (follow_last ? 0 : O_NOFOLLOW), kStrict));
  if (f) return !OnProcfs(f.get());
  if (errno != ENOENT) return false;
  const size_t slash = abs.find_last_of('/');
  const std::string last = abs.substr(slash + 1);
  if (last.empty() || last == "." || last == "..") return false;
  UniqueFd parent(
      Openat2(t.root, slash == 0 ? "/" : abs.substr(0, slash), O_PATH | O_DIRECTORY, kStrict));
  return parent && !OnProcfs(parent.get());
}

}  // namespace

absl::StatusOr<std::string> ResolveTaskPath(pid_t pid, int64_t dirfd, const std::string& path,
                                            bool follow_last) {
  if (path.empty()) return ErrnoStatus(ENOENT, "empty path");
  Task t;
  t.pid = pid;
  SA_ASSIGN_OR_RETURN(t.root, TaskRootFd(pid, t.owned));
  std::string base = "/";
  if (path[0] != '/') {
    const std::string link = dirfd == AT_FDCWD
                                 ? absl::StrCat("/proc/", pid, "/cwd")
                                 : absl::StrCat("/proc/", pid, "/fd/", static_cast<int>(dirfd));
    UniqueFd dir(open(link.c_str(), O_PATH | O_CLOEXEC));
    if (!dir) return ErrnoStatus(errno, absl::StrCat("open ", link));
    SA_ASSIGN_OR_RETURN(base, PathInRoot(t, dir.get()));
  }
  const std::string raw = base == "/" ? absl::StrCat("/", path) : absl::StrCat(base, "/", path);
  if (NoSymlinks(t, raw, follow_last)) return JoinNormalize("/", raw);
  Walker w(t, follow_last);
  return w.Run({}, raw);
}

}  // namespace seccomp_agent
