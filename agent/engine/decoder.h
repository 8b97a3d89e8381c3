// Fills a SyscallEvent's decoded arguments from the trapped task's memory,
// reading only what the policy needs (agent/model/syscall_args.h says
// where each argument sits).
#ifndef SECCOMP_AGENT_ENGINE_DECODER_H_
#define SECCOMP_AGENT_ENGINE_DECODER_H_

#include <linux/seccomp.h>

#include <cstddef>
#include <cstdint>

#include "agent/model/event.h"

namespace seccomp_agent {

// The event of a notification of `info`'s listener, before any argument is
// decoded.
SyscallEvent EventOf(const ContainerInfo& info, const seccomp_notif& n);

// Decodes the arguments named by `needs` (DecodeNeeds bits) plus the scalar
// ones (fd, dirfd, count), which cost nothing. A failed read leaves the
// value unset and explains itself in ev.decode_error. Returns true when the
// task's memory was read: the caller must then re-check NOTIF_ID_VALID
// before acting, because the pid may have been recycled.
bool DecodeEvent(SyscallEvent& ev, uint32_t needs, size_t max_write_capture);

// Parses raw sockaddr bytes (exposed for tests and the injector).
Sockaddr ParseSockaddr(const uint8_t* data, size_t len);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_DECODER_H_
