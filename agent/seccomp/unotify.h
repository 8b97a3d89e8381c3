// The narrow interface to the kernel's seccomp user-notification ioctls.
// Everything above it (engine, injector) is unit-testable with a gmock of
// this class; unotify_test.cc checks the real implementation on the kernel.
#ifndef SECCOMP_AGENT_SECCOMP_UNOTIFY_H_
#define SECCOMP_AGENT_SECCOMP_UNOTIFY_H_

#include <linux/seccomp.h>
#include <sys/types.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/seccomp/uapi.h"

namespace seccomp_agent {

// One listener's kernel calls. Errors carry the errno (ErrnoOf()).
class UnotifyInterface {
 public:
  virtual ~UnotifyInterface() = default;

  // NOTIF_RECV into a zeroed struct.
  virtual absl::Status Recv(int listener, struct seccomp_notif* out) = 0;
  // NOTIF_SEND.
  virtual absl::Status Send(int listener, const struct seccomp_notif_resp& resp) = 0;
  // NOTIF_ID_VALID: OK while the task still waits on `id`.
  virtual absl::Status IdValid(int listener, uint64_t id) = 0;
  // NOTIF_ADDFD: returns the fd number in the task.
  virtual absl::StatusOr<int> AddFd(int listener, const struct seccomp_notif_addfd& addfd) = 0;
  // NOTIF_INJECT (patched kernels only).
  virtual absl::Status Inject(int listener, const struct seccomp_notif_inject& inj) = 0;
  // NOTIF_SET_FLAGS (6.6+).
  virtual absl::Status SetFlags(int listener, uint64_t flags) = 0;
};

// The real thing: plain ioctls.
class KernelUnotify : public UnotifyInterface {
 public:
  absl::Status Recv(int listener, struct seccomp_notif* out) override;
  absl::Status Send(int listener, const struct seccomp_notif_resp& resp) override;
  absl::Status IdValid(int listener, uint64_t id) override;
  absl::StatusOr<int> AddFd(int listener, const struct seccomp_notif_addfd& addfd) override;
  absl::Status Inject(int listener, const struct seccomp_notif_inject& inj) override;
  absl::Status SetFlags(int listener, uint64_t flags) override;
};

// Process-wide instance of KernelUnotify.
UnotifyInterface& DefaultUnotify();

// True when `fd` is a seccomp user-notification listener (checked by the
// /proc/self/fd link "anon_inode:seccomp notify" and a harmless ID_VALID).
absl::Status CheckIsListener(int fd);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_SECCOMP_UNOTIFY_H_
