// The injector: carries out a substitution ("run this openat/bind/write
// instead") for a pending seccomp notification, and sends the reply.
//
// One entry point, Injector::Inject(), takes a Substitute (substitute.h),
// validates it with the kernel's rules before any ioctl, picks a backend and
// returns an Outcome naming the backend that answered:
//
//   "kernel"          SECCOMP_IOCTL_NOTIF_INJECT, then NOTIF_SEND with
//                     SECCOMP_USER_NOTIF_FLAG_INJECTED (val 0, error 0): the
//                     task runs the substitute itself, in its own context.
//   "emulation"       stock kernels: the agent performs the substitute as the
//                     task, in the calling (deciding) thread, which takes on
//                     the task's root, cwd, umask and credentials and is
//                     restored afterwards (task_context.h says why not a
//                     helper thread or a pool), and replies: openat/open by
//                     NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SEND (the task's
//                     O_CLOEXEC as newfd_flags), bind and write on the task's
//                     own fd taken with pidfd_getfd, replying the result.
//                     NOTIF_ID_VALID is re-checked right before the side
//                     effect, in the thread that performs it.
//   "strict-refused"  no acceptable backend: the call fails with the
//                     configured errno; nothing runs.
//
// Selection. The kernel is probed once, on the first listener the injector
// sees (ABI.md: INJECT of a well-formed struct with a stale id gives ENOENT
// on a patched kernel, ENOTTY/EINVAL otherwise); the result is cached and
// logged once. Then, per call:
//   mode auto     kernel if supported and the kernel can carry the call,
//                 else emulation (strict: refused)
//   mode kernel   kernel if supported and it can carry the call, else refused
//   mode emulate  emulation (strict: refused, strict wins)
// "The kernel can carry the call" excludes two cases:
//   * open(2) (nr 2) is not in the kernel's whitelist, and the substitute
//     must keep the trapped nr: a redirect of open() is emulated (auto) or
//     refused (kernel mode, strict). openat is injected.
//   * a write whose substitute length differs from the count the task asked
//     for (replace / redact changing the length): the kernel returns the
//     helper's count, i.e. the substitute's length, and the task would see
//     a count it did not ask for (more than asked breaks its accounting,
//     less makes it write its "rest" again). The emulation reports the
//     task's count instead, so such writes are emulated (auto) or refused.
//     Same-length substitutes are injected and see the kernel's count.
//
// Write count (emulation): the substitute is written in full (short writes
// and EINTR are continued). Fully written: the task sees ITS count, so it
// does not retry. Error before any byte: the task sees that errno (EAGAIN
// included, so a non-blocking writer polls and retries the whole call).
// Error after k > 0 bytes: the task sees its full count too (the bytes
// cannot be mapped back onto the task's buffer; a retry of the task's tail
// would only emit a second, different substitute); the Outcome says
// "partial k/M" so the decision log records it.
//
// Side effects happen exactly once. When a signal interrupts a pending
// notification, its id dies and, with SA_RESTART, the restarted call
// arrives with a NEW id.
//   * kernel: the kernel drops the injected record when the wait is
//     interrupted, nothing ran, and the SEND fails with ENOENT; the
//     restarted call is a fresh notification and a fresh decision is right.
//   * emulation: the side effect may already have run when the reply fails
//     with ENOENT. The injector then remembers (tid, nr, the task's args and
//     ip, the substitute's bytes) -> result for `replay_window`; the next
//     call with that identity gets the remembered result (for an open with
//     O_CREAT or O_TRUNC: the same open file is installed) without running
//     again. Opens without O_CREAT/O_TRUNC have no side effect and simply
//     run again. The cost: a deliberate identical second call inside the
//     window, right after an interrupted one, gets the remembered result.
#ifndef SECCOMP_AGENT_INJECTOR_INJECTOR_H_
#define SECCOMP_AGENT_INJECTOR_INJECTOR_H_

#include <linux/seccomp.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/injector/substitute.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent::injector {

inline constexpr std::string_view kBackendKernel = "kernel";
inline constexpr std::string_view kBackendEmulation = "emulation";
inline constexpr std::string_view kBackendStrictRefused = "strict-refused";

enum class Mode { kAuto, kKernel, kEmulate };

struct InjectorOptions {
  Mode mode = Mode::kAuto;
  bool strict = false;   // never emulate
  int strict_errno = 1;  // EPERM: the answer when no backend may run
  // How long an emulated side effect whose reply was lost is remembered.
  // Zero disables the guard (for the control test only).
  absl::Duration replay_window = absl::Seconds(5);
};

struct Outcome {
  std::string_view backend;  // kBackend*
  // For the decision log: "injected" (kernel: the task got the helper's
  // value), "fd 5", "12", "0", "EACCES", "task-gone", "replayed 12",
  // "partial 3/10 -> 12".
  std::string result;
  bool task_gone = false;  // the task was no longer waiting: nothing reached it
  // What the task sees, when the agent knows it (emulation, refusal).
  bool known_value = false;
  int64_t value = 0;  // >= 0 success value
  int error = 0;      // > 0 errno
};

// One way of carrying out a validated substitute; it sends the reply.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual absl::StatusOr<Outcome> Run(int listener, const seccomp_notif& notif,
                                      const Substitute& sub) = 0;
};

std::unique_ptr<Backend> MakeKernelBackend(UnotifyInterface& unotify);
std::unique_ptr<Backend> MakeEmulationBackend(UnotifyInterface& unotify,
                                              absl::Duration replay_window);

// INJECT with a well-formed struct and a stale id. true: ENOENT, the kernel
// has NOTIF_INJECT. false: ENOTTY or EINVAL. Anything else: error.
absl::StatusOr<bool> ProbeKernelInjection(UnotifyInterface& unotify, int listener);

class Injector {
 public:
  Injector(InjectorOptions opts, UnotifyInterface& unotify);
  ~Injector();

  // Validates `sub` for `notif`, picks the backend and sends the reply.
  // An error means no reply was sent (validation failure: the errno and
  // the rule are in the status, no ioctl was made; or a backend failure
  // before the reply): the caller answers, e.g. with its fallback errno.
  // A task that went away is an OK Outcome with task_gone.
  absl::StatusOr<Outcome> Inject(int listener, const seccomp_notif& notif, const Substitute& sub);

  // The notification interface the injector replies on (privileged.h
  // takes it too).
  UnotifyInterface& unotify() { return unotify_; }
  // Answers `id` with {error} (no substitute runs); `backend` and `result`
  // go into the Outcome for the decision log.
  absl::StatusOr<Outcome> Refuse(int listener, uint64_t id, int error, std::string_view backend,
                                 std::string result);

  // Probes on `listener` unless a probe already gave a definite answer
  // (ENOENT / ENOTTY / EINVAL). Inject() calls it.
  void EnsureProbed(int listener);
  // After the probe: whether the kernel has NOTIF_INJECT.
  bool kernel_supported() const;
  // After the probe: the backend a whitelisted, kernel-carriable call gets.
  std::string_view default_backend() const;

 private:
  std::string_view RouteLocked(const Substitute& sub) const;
  std::string_view default_backend_locked() const;

  InjectorOptions opts_;
  UnotifyInterface& unotify_;
  std::unique_ptr<Backend> kernel_;
  std::unique_ptr<Backend> emulation_;
  mutable std::mutex mu_;
  bool probed_ = false;
  bool kernel_supported_ = false;
};

}  // namespace seccomp_agent::injector

#endif  // SECCOMP_AGENT_INJECTOR_INJECTOR_H_
