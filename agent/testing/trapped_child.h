// Test fixture: a child process whose chosen syscalls trap to a real seccomp
// user-notification listener that the test (the supervisor) holds.
#ifndef SECCOMP_AGENT_TESTING_TRAPPED_CHILD_H_
#define SECCOMP_AGENT_TESTING_TRAPPED_CHILD_H_

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/fd.h"

namespace seccomp_agent::testing {

class TrappedChild {
 public:
  // Forks a child that installs a filter returning SCMP_ACT_NOTIFY for
  // `syscalls` (libseccomp names, native arch) and ALLOW otherwise, passes
  // the listener to the parent (closing its own copy), waits for Start(),
  // runs `body` and exits with its return value (0..255).
  // The filter is built before fork; the child makes only raw syscalls
  // before `body` runs.
  static absl::StatusOr<TrappedChild> Spawn(const std::vector<std::string>& syscalls,
                                            std::function<int()> body);
  // The same with a BPF program of the caller's (e.g. one written by hand
  // for what libseccomp will not build, such as trapping an x32 call).
  static absl::StatusOr<TrappedChild> SpawnWithFilter(std::vector<sock_filter> program,
                                                      std::function<int()> body);

  TrappedChild(TrappedChild&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)), listener_(std::move(o.listener_)), go_(std::move(o.go_)) {}
  TrappedChild& operator=(TrappedChild&&) = delete;
  // Kills (SIGKILL) and reaps the child if still running.
  ~TrappedChild();

  pid_t pid() const { return pid_; }
  int listener() const { return listener_.get(); }
  // Hands the listener to the caller (e.g. to pass to an agent).
  UniqueFd TakeListener() { return std::move(listener_); }
  // Lets the child run `body`.
  void Start();
  // The next notification on the listener (DeadlineExceeded after 10 s).
  absl::StatusOr<seccomp_notif> RecvNotification() const;
  // Waits for exit; returns the exit code, or 128+signal.
  int Wait();

 private:
  TrappedChild() = default;
  pid_t pid_ = -1;
  UniqueFd listener_;
  UniqueFd go_;  // write end: one byte starts the body
};

}  // namespace seccomp_agent::testing

#endif  // SECCOMP_AGENT_TESTING_TRAPPED_CHILD_H_
