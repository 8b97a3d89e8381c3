// The kernel and emulation backends (see injector.h for what each does and
// why).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/fd.h"
#include "agent/common/status.h"
#include "agent/injector/injector.h"
#include "agent/injector/replay_cache.h"
#include "agent/injector/safe_open.h"
#include "agent/injector/task_context.h"

namespace seccomp_agent::injector {
namespace {

Outcome TaskGone(std::string_view backend) {
  Outcome o;
  o.backend = backend;
  o.result = "task-gone";
  o.task_gone = true;
  return o;
}

// ---------------------------------------------------------------- kernel

class KernelBackend : public Backend {
 public:
  explicit KernelBackend(UnotifyInterface& u) : u_(u) {}
  std::string_view name() const override { return kBackendKernel; }

  // No NOTIF_ID_VALID here: the agent performs no side effect, and the
  // kernel checks the id and the notification's state itself at INJECT.
  absl::StatusOr<Outcome> Run(int listener, const seccomp_notif& notif,
                              const Substitute& sub) override {
    const seccomp_notif_inject inj = ToKernelStruct(sub, notif.id);
    absl::Status s = u_.Inject(listener, inj);
    if (ErrnoOf(s) == ENOENT) return TaskGone(name());
    if (!s.ok()) return s;  // nothing attached: the caller may still reply
    seccomp_notif_resp resp;
    memset(&resp, 0, sizeof(resp));
    resp.id = notif.id;
    resp.flags = SECCOMP_USER_NOTIF_FLAG_INJECTED;
    s = u_.Send(listener, resp);
    // ENOENT: the task was killed or interrupted while waiting; the kernel
    // dropped the record and nothing ran (a restarted call is a new
    // notification and gets a fresh decision).
    if (ErrnoOf(s) == ENOENT) return TaskGone(name());
    if (!s.ok()) return s;  // the record stays until a plain reply drops it
    Outcome o;
    o.backend = name();
    o.result = "injected";
    return o;
  }

 private:
  UnotifyInterface& u_;
};

// ------------------------------------------------------------- emulation

class EmulationBackend : public Backend {
 public:
  EmulationBackend(UnotifyInterface& u, absl::Duration window) : u_(u), replay_(window) {}
  std::string_view name() const override { return kBackendEmulation; }

  absl::StatusOr<Outcome> Run(int listener, const seccomp_notif& notif,
                              const Substitute& sub) override {
    absl::StatusOr<Outcome> out = Dispatch(listener, notif, sub);
    // Reading the task's context fails when it has gone (its /proc entries
    // vanish): report that as such, not as an agent error.
    if (!out.ok() && ErrnoOf(u_.IdValid(listener, notif.id)) == ENOENT) return TaskGone(name());
    return out;
  }

 private:
  absl::StatusOr<Outcome> Dispatch(int listener, const seccomp_notif& notif,
                                   const Substitute& sub) {
    std::string key = ReplayCache::Key(notif, sub);
    // Until this call has remembered (or not) its result: a restarted copy
    // of it on another worker waits here instead of running it twice.
    ReplayCache::Claim claim(replay_, key);
    if (std::optional<ReplayResult> r = replay_.Take(key)) {
      return Replay(listener, notif, std::move(key), std::move(*r));
    }
    switch (sub.nr) {
      case __NR_openat:
      case __NR_open:
        return Open(listener, notif, sub, std::move(key));
      case __NR_bind:
        return Bind(listener, notif, sub, std::move(key));
      case __NR_write:
        return Write(listener, notif, sub, std::move(key));
      default:
        return ErrnoStatus(EOPNOTSUPP, absl::StrCat("emulation: syscall ", sub.nr));
    }
  }

  // Replies {value | -error}; on ENOENT remembers `r` under `key` when the
  // side effect already ran.
  absl::StatusOr<Outcome> Reply(int listener, uint64_t id, int64_t value, int error,
                                std::string key, std::string result) {
    seccomp_notif_resp resp;
    memset(&resp, 0, sizeof(resp));
    resp.id = id;
    resp.val = error ? 0 : value;
    resp.error = error ? -error : 0;
    absl::Status s = u_.Send(listener, resp);
    if (ErrnoOf(s) == ENOENT) {
      if (!key.empty()) replay_.Remember(std::move(key), ReplayResult{value, error, nullptr, 0});
      return TaskGone(name());
    }
    if (!s.ok()) return s;
    Outcome o;
    o.backend = name();
    o.result = std::move(result);
    o.known_value = true;
    o.value = error ? 0 : value;
    o.error = error;
    return o;
  }

  absl::StatusOr<Outcome> Install(int listener, uint64_t id, std::shared_ptr<UniqueFd> file,
                                  uint32_t newfd_flags, std::string key, bool remember,
                                  const char* prefix) {
    seccomp_notif_addfd addfd;
    memset(&addfd, 0, sizeof(addfd));
    addfd.id = id;
    addfd.flags = SECCOMP_ADDFD_FLAG_SEND;  // install and reply in one step
    addfd.srcfd = static_cast<uint32_t>(file->get());
    addfd.newfd = 0;
    addfd.newfd_flags = newfd_flags;
    absl::StatusOr<int> fd = u_.AddFd(listener, addfd);
    if (!fd.ok() && ErrnoOf(fd.status()) == ENOENT) {
      if (remember) {
        replay_.Remember(std::move(key), ReplayResult{0, 0, std::move(file), newfd_flags});
      }
      return TaskGone(name());
    }
    // The task's fd table is full: openat(2) would have said so.
    const int err = ErrnoOf(fd.status());
    if (err == EMFILE || err == ENFILE) return Reply(listener, id, 0, err, "", ErrnoName(err));
    if (!fd.ok()) return fd.status();
    Outcome o;
    o.backend = name();
    o.result = absl::StrCat(prefix, "fd ", *fd);
    o.known_value = true;
    o.value = *fd;
    return o;
  }

  absl::StatusOr<Outcome> Replay(int listener, const seccomp_notif& notif, std::string key,
                                 ReplayResult r) {
    if (r.file) {
      return Install(listener, notif.id, std::move(r.file), r.newfd_flags, std::move(key),
                     /*remember=*/true, "replayed ");
    }
    std::string result =
        absl::StrCat("replayed ", r.error ? ErrnoName(r.error) : absl::StrCat(r.value));
    // A second loss keeps the entry for the next restart.
    return Reply(listener, notif.id, r.value, r.error, std::move(key), std::move(result));
  }

  absl::StatusOr<Outcome> Open(int listener, const seccomp_notif& notif, const Substitute& sub,
                               std::string key) {
    const bool is_openat = sub.nr == __NR_openat;
    const int p = is_openat ? 1 : 0;
    const char* path = sub.buf.data() + sub.args[p];
    const int dirfd = is_openat ? static_cast<int>(static_cast<int32_t>(sub.args[0])) : AT_FDCWD;
    const int flags = static_cast<int>(sub.args[is_openat ? 2 : 1]);
    const mode_t mode = static_cast<mode_t>(sub.args[is_openat ? 3 : 2]);
    const bool absolute = path[0] == '/';

    SA_ASSIGN_OR_RETURN(TaskCreds creds, ReadTaskCreds(notif.pid));
    SA_ASSIGN_OR_RETURN(TaskFs fs, OpenTaskFs(notif.pid, !absolute && dirfd == AT_FDCWD));
    UniqueFd task_dirfd;
    if (!absolute && dirfd != AT_FDCWD) {
      SA_ASSIGN_OR_RETURN(UniqueFd pidfd, OpenTaskPidfd(creds));
      absl::StatusOr<UniqueFd> d = GetTaskFd(pidfd.get(), dirfd);
      if (!d.ok()) {
        // The task's dirfd is not open: openat(2) says EBADF.
        if (ErrnoOf(d.status()) == EBADF) return Reply(listener, notif.id, 0, EBADF, "", "EBADF");
        return d.status();
      }
      task_dirfd = std::move(*d);
    }

    SA_RETURN_IF_ERROR(PrepareSafeOpen());
    SafeOpenRequest req;
    req.dirfd = task_dirfd ? task_dirfd.get() : AT_FDCWD;
    req.path = path;
    req.flags = flags;
    req.mode = mode;
    req.beneath = sub.beneath;
    // An absolute path that creates nothing needs neither the task's cwd
    // nor its umask: it resolves IN_ROOT from the task's root fd, and the
    // thread keeps its own fs context (no unshare, chroot, fchdir, umask and
    // their restore). Everything else stands in the task's root and cwd.
    const bool creates = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
    const bool in_root = absolute && !creates;
    if (in_root) req.root_fd = fs.root;
    const FsContext ctx = in_root ? FsContext{} : FsContext{fs.root, fs.cwd.get()};
    SafeOpenResult opened;
    bool gone = false;
    SA_RETURN_IF_ERROR(RunAsTask(creds, ctx, [&] {
      if (!u_.IdValid(listener, notif.id).ok()) {  // before any side effect
        gone = true;
        return;
      }
      opened = SafeOpen(req);  // safe_open.h: what is opened, and how
    }));
    if (gone) return TaskGone(name());
    if (!opened.fd) {
      std::string result = ErrnoName(opened.error);
      if (!opened.why.empty()) absl::StrAppend(&result, " (refused: ", opened.why, ")");
      return Reply(listener, notif.id, 0, opened.error, "", std::move(result));
    }
    auto file = std::make_shared<UniqueFd>(std::move(opened.fd));
    const bool side_effect = (flags & (O_CREAT | O_TRUNC)) != 0;
    return Install(listener, notif.id, std::move(file), static_cast<uint32_t>(flags & O_CLOEXEC),
                   std::move(key), side_effect, "");
  }

  absl::StatusOr<Outcome> Bind(int listener, const seccomp_notif& notif, const Substitute& sub,
                               std::string key) {
    const int sockfd = static_cast<int>(static_cast<int32_t>(sub.args[0]));
    const auto* addr = reinterpret_cast<const sockaddr*>(sub.buf.data() + sub.args[1]);
    const socklen_t addrlen = static_cast<socklen_t>(sub.args[2]);
    // A call that is already over (its task answered by a restarted copy,
    // which may since have closed the socket) must not take a copy of the
    // socket: held even briefly, it keeps the address bound under the
    // task's next bind. While the call is valid the task cannot close it,
    // and a restarted copy waits for this one's claim.
    if (!u_.IdValid(listener, notif.id).ok()) return TaskGone(name());
    SA_ASSIGN_OR_RETURN(TaskCreds creds, ReadTaskCreds(notif.pid));
    SA_ASSIGN_OR_RETURN(UniqueFd pidfd, OpenTaskPidfd(creds));
    absl::StatusOr<UniqueFd> sock = GetTaskFd(pidfd.get(), sockfd);
    if (!sock.ok()) {
      if (ErrnoOf(sock.status()) == EBADF) return Reply(listener, notif.id, 0, EBADF, "", "EBADF");
      return sock.status();
    }
    // A unix path is created relative to the task's root and cwd.
    SA_ASSIGN_OR_RETURN(TaskFs fs, OpenTaskFs(notif.pid, /*want_cwd=*/true));
    int rc = -1, err = 0;
    bool gone = false;
    SA_RETURN_IF_ERROR(RunAsTask(creds, FsContext{fs.root, fs.cwd.get()}, [&] {
      if (!u_.IdValid(listener, notif.id).ok()) {
        gone = true;
        return;
      }
      rc = bind(sock->get(), addr, addrlen);
      if (rc != 0) err = errno;
    }));
    // Close the agent's copy of the socket before the reply: once the task
    // has its answer it may close the socket and bind the same address
    // again (or another process may), which must not find it still held.
    sock->reset();
    if (gone) return TaskGone(name());
    // A failed bind changed nothing: no need to remember it.
    return Reply(listener, notif.id, 0, err, err ? "" : std::move(key), err ? ErrnoName(err) : "0");
  }

  absl::StatusOr<Outcome> Write(int listener, const seccomp_notif& notif, const Substitute& sub,
                                std::string key) {
    const int fd = static_cast<int>(static_cast<int32_t>(sub.args[0]));
    const char* bytes = sub.buf.data() + sub.args[1];
    const size_t count = sub.args[2];
    const int64_t task_count = static_cast<int64_t>(sub.task_count.value_or(count));
    if (!u_.IdValid(listener, notif.id).ok()) return TaskGone(name());  // as in Bind
    SA_ASSIGN_OR_RETURN(TaskCreds creds, ReadTaskCreds(notif.pid));
    SA_ASSIGN_OR_RETURN(UniqueFd pidfd, OpenTaskPidfd(creds));
    absl::StatusOr<UniqueFd> file = GetTaskFd(pidfd.get(), fd);
    if (!file.ok()) {
      if (ErrnoOf(file.status()) == EBADF) return Reply(listener, notif.id, 0, EBADF, "", "EBADF");
      return file.status();
    }
    size_t done = 0;
    int err = 0;
    bool gone = false;
    // Credentials as the task's (some files check the writer at write
    // time); no fs context needed.
    SA_RETURN_IF_ERROR(RunAsTask(creds, FsContext{}, [&] {
      if (!u_.IdValid(listener, notif.id).ok()) {
        gone = true;
        return;
      }
      while (done < count) {
        ssize_t n = write(file->get(), bytes + done, count - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          err = n < 0 ? errno : EIO;
          break;
        }
        done += static_cast<size_t>(n);
      }
    }));
    // Likewise the agent's copy of the file: a task that closes its last fd
    // after the reply (a pipe's writer) must not leave it open behind it.
    file->reset();
    if (gone) return TaskGone(name());
    if (done == 0 && count > 0 && err) {
      return Reply(listener, notif.id, 0, err, "", ErrnoName(err));  // nothing written
    }
    std::string result = absl::StrCat(task_count);
    if (done < count) result = absl::StrCat("partial ", done, "/", count, " -> ", task_count);
    return Reply(listener, notif.id, task_count, 0, std::move(key), std::move(result));
  }

  UnotifyInterface& u_;
  ReplayCache replay_;
};

}  // namespace

std::unique_ptr<Backend> MakeKernelBackend(UnotifyInterface& unotify) {
  return std::make_unique<KernelBackend>(unotify);
}

std::unique_ptr<Backend> MakeEmulationBackend(UnotifyInterface& unotify,
                                              absl::Duration replay_window) {
  return std::make_unique<EmulationBackend>(unotify, replay_window);
}

}  // namespace seccomp_agent::injector
