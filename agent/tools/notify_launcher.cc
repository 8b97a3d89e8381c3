// notify-launcher: a minimal stand-in for a container runtime's handoff, for
// places with no runc (the VM) and for demos. It forks; the child installs a
// seccomp filter that NOTIFYs the given syscalls, sends the listener to the
// agent exactly as runc does (one compact ContainerProcessState JSON plus
// SCM_RIGHTS on a SOCK_STREAM connection to --socket), closes its own copy
// and execs the command. The parent waits and exits with the child's status.
//
//   notify-launcher --socket=/run/seccomp-agent/agent.sock --id=vm1 \
//       --syscalls=openat,bind,write -- /bin/sh -c '...'
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "agent/common/unix_socket.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, socket, "/run/seccomp-agent/agent.sock", "The agent's socket.");
ABSL_FLAG(std::string, id, "launcher", "Container id to report.");
ABSL_FLAG(std::string, syscalls, "openat", "Comma-separated syscalls to NOTIFY.");
ABSL_FLAG(std::string, metadata, "", "listenerMetadata to send (empty: none).");

namespace {

int Die(const char* what) {
  fprintf(stderr, "notify-launcher: %s: %s\n", what, strerror(errno));
  return 127;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() < 2) {
    fprintf(stderr, "usage: notify-launcher [flags] -- COMMAND [ARGS...]\n");
    return 2;
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_syscalls), ',', absl::SkipEmpty())) {
    int nr = seccomp_syscall_resolve_name(std::string(name).c_str());
    if (nr == __NR_SCMP_ERROR || seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0) != 0) {
      fprintf(stderr, "notify-launcher: cannot trap %s\n", std::string(name).c_str());
      return 2;
    }
  }
  pid_t pid = fork();
  if (pid < 0) return Die("fork");
  if (pid == 0) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (seccomp_load(ctx) != 0) return Die("seccomp_load");
    int listener = seccomp_notify_fd(ctx);
    if (listener < 0) return Die("seccomp_notify_fd");
    // From here on the trapped syscalls wait for the agent.
    nlohmann::json msg;
    msg["ociVersion"] = "1.0.2-dev";
    msg["fds"] = {"seccompFd"};
    msg["pid"] = getpid();
    if (!absl::GetFlag(FLAGS_metadata).empty()) msg["metadata"] = absl::GetFlag(FLAGS_metadata);
    msg["state"] = {{"ociVersion", "1.0.2-dev"},
                    {"id", absl::GetFlag(FLAGS_id)},
                    {"status", "creating"},
                    {"pid", getpid()},
                    {"bundle", "/"}};
    std::string body = msg.dump();
    auto s = seccomp_agent::ConnectUnix(absl::GetFlag(FLAGS_socket));
    if (!s.ok()) return Die("connect");
    if (!seccomp_agent::SendWithFds(s->get(), body, {listener}).ok()) return Die("sendmsg");
    // Keeping a copy would make the task hang instead of ENOSYS if the
    // agent dies (docs/runtimes.md).
    close(listener);
    s->reset();
    rest.push_back(nullptr);
    execvp(rest[1], &rest[1]);
    return Die("execvp");
  }
  seccomp_release(ctx);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
