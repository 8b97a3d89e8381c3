#include "agent/testing/trapped_child.h"

#include <fcntl.h>
#include <poll.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/common/status.h"
#include "agent/seccomp/filter_util.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent::testing {
namespace {

// Builds the BPF program in the parent (libseccomp allocates; the child
// must not after fork).
absl::StatusOr<std::vector<sock_filter>> BuildFilter(const std::vector<std::string>& syscalls) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return absl::InternalError("seccomp_init failed");
  for (const auto& name : syscalls) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) {
      seccomp_release(ctx);
      return absl::InvalidArgumentError(absl::StrCat("unknown syscall ", name));
    }
    int rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0);
    if (rc != 0) {
      seccomp_release(ctx);
      return ErrnoStatus(-rc, absl::StrCat("seccomp_rule_add ", name));
    }
  }
  return ExportBpf(ctx);
}

}  // namespace

absl::StatusOr<TrappedChild> TrappedChild::Spawn(const std::vector<std::string>& syscalls,
                                                 std::function<int()> body) {
  SA_ASSIGN_OR_RETURN(std::vector<sock_filter> prog, BuildFilter(syscalls));
  return SpawnWithFilter(std::move(prog), std::move(body));
}

absl::StatusOr<TrappedChild> TrappedChild::SpawnWithFilter(std::vector<sock_filter> prog,
                                                           std::function<int()> body) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return ErrnoStatus(errno, "socketpair");
  }
  UniqueFd parent_sock(sv[0]), child_sock(sv[1]);
  int go[2];
  if (pipe2(go, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  UniqueFd go_read(go[0]), go_write(go[1]);

  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
    int listener =
        syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
    if (listener < 0) _exit(120);
    SendOneFd(child_sock.get(), listener);
    ::close(listener);  // else the task hangs instead of ENOSYS if the supervisor dies
    char b;
    if (read(go_read.get(), &b, 1) != 1) _exit(121);
    _exit(body() & 0xff);
  }
  TrappedChild child;
  child.pid_ = pid;
  child_sock.reset();
  go_read.reset();
  child.go_ = std::move(go_write);
  int fd = RecvOneFd(parent_sock.get());
  if (fd < 0) return absl::InternalError("child did not send a listener fd");
  child.listener_.reset(fd);
  return child;
}

TrappedChild::~TrappedChild() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

absl::StatusOr<seccomp_notif> TrappedChild::RecvNotification() const {
  pollfd p{listener_.get(), POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) return absl::DeadlineExceededError("no notification");
  seccomp_notif n;
  SA_RETURN_IF_ERROR(DefaultUnotify().Recv(listener_.get(), &n));
  return n;
}

void TrappedChild::Start() {
  char b = 'G';
  (void)write(go_.get(), &b, 1);
}

int TrappedChild::Wait() {
  int status = 0;
  if (waitpid(pid_, &status, 0) != pid_) return -1;
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

}  // namespace seccomp_agent::testing
