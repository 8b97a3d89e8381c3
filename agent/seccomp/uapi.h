// The seccomp user-notification constants and structs this project uses
// that some userspace headers lack: the newer upstream flags, and the
// injection ABI of our kernel patch (docs/ABI.md), which no released kernel
// header carries. Header-only, no dependencies: the static VM binaries use
// it too.
#ifndef SECCOMP_AGENT_SECCOMP_UAPI_H_
#define SECCOMP_AGENT_SECCOMP_UAPI_H_

#include <linux/seccomp.h>
#include <linux/types.h>

// Constants newer than some userspace headers.
#ifndef SECCOMP_USER_NOTIF_FLAG_CONTINUE
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE (1UL << 0)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#ifndef SECCOMP_ADDFD_FLAG_SEND
#define SECCOMP_ADDFD_FLAG_SEND (1UL << 1)
#endif

// The injection ABI (docs/ABI.md); defined here because no
// released kernel header carries it.
#ifndef SECCOMP_USER_NOTIF_FLAG_INJECTED
#define SECCOMP_USER_NOTIF_FLAG_INJECTED (1UL << 1)
struct seccomp_notif_inject {
  __u64 id;
  __u64 nr;
  __u64 args[6];
  __u64 buf;
  __u32 buf_size;
  __u32 args_in_buf_mask;
};
#define SECCOMP_IOCTL_NOTIF_INJECT SECCOMP_IOW(5, struct seccomp_notif_inject)
#define SECCOMP_NOTIF_INJECT_MAX_BYTES (1UL << 20)
#endif
static_assert(sizeof(struct seccomp_notif_inject) == 80, "ABI.md: 80 bytes");

#endif  // SECCOMP_AGENT_SECCOMP_UAPI_H_
