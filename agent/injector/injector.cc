#include "agent/injector/injector.h"

#include <fcntl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/log.h"
#include "agent/common/status.h"

namespace seccomp_agent::injector {
namespace {

// The kernel can carry `sub` without changing what the task sees.
bool KernelCarries(const Substitute& sub) {
  if (sub.nr != __NR_openat && sub.nr != __NR_bind && sub.nr != __NR_write) return false;
  if (sub.nr == __NR_write && sub.task_count.has_value() && *sub.task_count != sub.args[2]) {
    return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<bool> ProbeKernelInjection(UnotifyInterface& unotify, int listener) {
  // Well-formed (openat of "/", mask 1 << 1) so that only the id can fail.
  static const char kPath[] = "/";
  seccomp_notif_inject inj;
  memset(&inj, 0, sizeof(inj));
  inj.id = ~0ULL;  // ids are per filter counters: this one is never pending
  inj.nr = __NR_openat;
  inj.args[0] = static_cast<uint64_t>(static_cast<int64_t>(-100));  // AT_FDCWD
  inj.args[1] = 0;
  inj.buf = reinterpret_cast<uintptr_t>(kPath);
  inj.buf_size = sizeof(kPath);
  inj.args_in_buf_mask = 1u << 1;
  absl::Status s = unotify.Inject(listener, inj);
  int err = ErrnoOf(s);
  if (err == ENOENT) return true;
  if (err == ENOTTY || err == EINVAL) return false;
  if (s.ok()) return absl::InternalError("NOTIF_INJECT accepted a stale id");
  return s;
}

Injector::Injector(InjectorOptions opts, UnotifyInterface& unotify)
    : opts_(opts),
      unotify_(unotify),
      kernel_(MakeKernelBackend(unotify)),
      emulation_(MakeEmulationBackend(unotify, opts.replay_window)) {}

Injector::~Injector() = default;

void Injector::EnsureProbed(int listener) {
  std::lock_guard<std::mutex> lock(mu_);
  if (probed_) return;
  absl::StatusOr<bool> p = ProbeKernelInjection(unotify_, listener);
  kernel_supported_ = p.ok() && *p;
  // A definite answer is cached for good; an odd error (e.g. a listener
  // that was already closed) leaves the kernel backend off for this call
  // and probes again on the next listener.
  probed_ = p.ok();
  const char* mode = opts_.mode == Mode::kAuto     ? "auto"
                     : opts_.mode == Mode::kKernel ? "kernel"
                                                   : "emulate";
  spdlog::info(
      "injector: SECCOMP_IOCTL_NOTIF_INJECT {} ({}); mode {}{}, backend {}",
      kernel_supported_ ? "supported" : "not supported",
      p.ok() ? (*p ? "probe: ENOENT" : "probe: ENOTTY/EINVAL") : std::string(p.status().message()),
      mode, opts_.strict ? " strict" : "", std::string(default_backend_locked()));
}

bool Injector::kernel_supported() const {
  std::lock_guard<std::mutex> lock(mu_);
  return kernel_supported_;
}

std::string_view Injector::default_backend() const {
  std::lock_guard<std::mutex> lock(mu_);
  return default_backend_locked();
}

std::string_view Injector::default_backend_locked() const {
  Substitute typical;
  typical.nr = __NR_openat;
  return RouteLocked(typical);
}

std::string_view Injector::RouteLocked(const Substitute& sub) const {
  const bool may_emulate = !opts_.strict;
  switch (opts_.mode) {
    case Mode::kEmulate:
      return may_emulate ? kBackendEmulation : kBackendStrictRefused;
    case Mode::kKernel:
      return kernel_supported_ && KernelCarries(sub) ? kBackendKernel : kBackendStrictRefused;
    case Mode::kAuto:
    default:
      if (kernel_supported_ && KernelCarries(sub)) return kBackendKernel;
      return may_emulate ? kBackendEmulation : kBackendStrictRefused;
  }
}

absl::StatusOr<Outcome> Injector::Inject(int listener, const seccomp_notif& notif,
                                         const Substitute& sub) {
  // The widest rule set first: a substitute that breaks a rule is the
  // agent's mistake whatever the backend, and no ioctl is made for it.
  SA_RETURN_IF_ERROR(Validate(sub, notif.data.nr, notif.data.arch, Ruleset::kEmulation));
  EnsureProbed(listener);
  std::string_view route;
  {
    std::lock_guard<std::mutex> lock(mu_);
    route = RouteLocked(sub);
  }
  if (route == kBackendKernel) {
    SA_RETURN_IF_ERROR(Validate(sub, notif.data.nr, notif.data.arch, Ruleset::kKernel));
    return kernel_->Run(listener, notif, sub);
  }
  if (route == kBackendEmulation) return emulation_->Run(listener, notif, sub);

  // Refused: the call fails with strict_errno, nothing runs.
  return Refuse(listener, notif.id, opts_.strict_errno, kBackendStrictRefused,
                ErrnoName(opts_.strict_errno));
}

absl::StatusOr<Outcome> Injector::Refuse(int listener, uint64_t id, int error,
                                         std::string_view backend, std::string result) {
  seccomp_notif_resp resp;
  memset(&resp, 0, sizeof(resp));
  resp.id = id;
  resp.error = -error;
  absl::Status s = unotify_.Send(listener, resp);
  Outcome o;
  o.backend = backend;
  if (ErrnoOf(s) == ENOENT) {
    o.result = "task-gone";
    o.task_gone = true;
    return o;
  }
  if (!s.ok()) return s;
  o.result = std::move(result);
  o.known_value = true;
  o.error = error;
  return o;
}

}  // namespace seccomp_agent::injector
