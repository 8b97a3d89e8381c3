// A substitute syscall for a pending notification, and the rules it must
// satisfy before any ioctl (docs/ABI.md, including this project's
// stricter INJECT-time checks). The agent checks the
// same rules as the patched kernel, in the same order, with the same errno,
// so a mistake of the agent is reported by the agent, names the rule, and
// never reaches the kernel or the task.
#ifndef SECCOMP_AGENT_INJECTOR_SUBSTITUTE_H_
#define SECCOMP_AGENT_INJECTOR_SUBSTITUTE_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent::injector {

// {nr, args[6], args_in_buf_mask, buf} as in struct seccomp_notif_inject.
// An argument whose bit is set in `args_in_buf_mask` is a byte offset into
// `buf`; the others are scalars passed as they are.
struct Substitute {
  int64_t nr = -1;
  uint64_t args[6] = {0, 0, 0, 0, 0, 0};
  uint32_t args_in_buf_mask = 0;
  std::string buf;  // the bytes the pointer argument points into

  // write only: the value the task sees when the substitute bytes are all
  // written, i.e. the count the TASK asked to write. It differs from
  // args[2] (the substitute's own length) when a policy changes the length;
  // see "write count" in injector.h. nullopt: args[2].
  std::optional<uint64_t> task_count;

  // openat/open only, never sent to the kernel: an absolute directory (a
  // redirect root) the opened file must resolve beneath. The emulation
  // opens with RESOLVE_BENEATH from it (safe_open.h); the kernel backend
  // checks the target's resolution before injecting. "" = no such bound.
  std::string beneath;

  // Builders. Each produces a substitute that passes Validate() for the
  // matching trapped syscall (the pointer argument at offset 0 of buf).
  static Substitute Openat(int dirfd, std::string_view path, int flags, mode_t mode);
  // open(2) (x86_64 nr 2): not in the kernel whitelist, emulation only;
  // the path is args[0].
  static Substitute Open(std::string_view path, int flags, mode_t mode);
  static Substitute Bind(int sockfd, std::string_view sockaddr_bytes);
  static Substitute Write(int fd, std::string_view bytes, std::optional<uint64_t> task_count);

  // "openat(AT_FDCWD, \"/x\", 0x80000, 0)" and the like, for logs.
  std::string DebugString() const;
};

// Which rule set applies.
enum class Ruleset {
  // The patched kernel's rules: whitelist openat/bind/write, mask exactly
  // 1 << 1.
  kKernel,
  // The kernel's rules plus open(2) (path at args[0], mask 1 << 0), which
  // only the emulation can carry out.
  kEmulation,
};

// Checks `s` for a notification that trapped `trapped_nr` on `trapped_arch`
// (AUDIT_ARCH_*). Order and errno as the kernel's INJECT:
//   1. nr in the whitelist (and a native-ABI trap)   EOPNOTSUPP
//   2. mask bits beyond args[0..5]                    EINVAL
//   3. buf_size <= SECCOMP_NOTIF_INJECT_MAX_BYTES      E2BIG
//   4. (buf == NULL with buf_size > 0: impossible for a std::string)
//   5. every offset <= buf_size                       EINVAL
//   6. mask == exactly the pointer argument's bit     EINVAL
//   7. bind: addrlen <= sizeof(sockaddr_storage) and inside buf;
//      write: count inside buf                        EINVAL
//   8. openat/open: a NUL inside buf after the offset EINVAL
//   9. nr == trapped nr                               ESRCH
// (The kernel checks 9 after the id and state; the agent checks it before
// any ioctl, so the errno is the same but no ioctl is made.)
// The error is an ErrnoStatus (ErrnoOf() gives the errno) whose message
// starts with "substitute rule <name>:" naming the rule.
absl::Status Validate(const Substitute& s, int64_t trapped_nr, uint32_t trapped_arch,
                      Ruleset rules);

// The ioctl struct for `s`; `buf` points into s.buf (keep `s` alive).
struct seccomp_notif_inject ToKernelStruct(const Substitute& s, uint64_t id);

// The pointer argument's index for a whitelisted nr (1 for openat, bind,
// write; 0 for open), or -1.
int PointerArg(int64_t nr);

}  // namespace seccomp_agent::injector

#endif  // SECCOMP_AGENT_INJECTOR_SUBSTITUTE_H_
