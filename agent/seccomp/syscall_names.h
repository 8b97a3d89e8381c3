// Syscall names for (arch, nr) pairs, through libseccomp, cached.
#ifndef SECCOMP_AGENT_SECCOMP_SYSCALL_NAMES_H_
#define SECCOMP_AGENT_SECCOMP_SYSCALL_NAMES_H_

#include <cstdint>
#include <string>

namespace seccomp_agent {

// "mkdirat" for (AUDIT_ARCH_X86_64, 258); "syscall_<nr>" when unknown.
// Thread-safe; the returned reference stays valid for the process lifetime.
const std::string& SyscallName(uint32_t arch, int nr);

// True when `arch` is the agent's own (native) architecture.
bool IsNativeArch(uint32_t arch);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_SECCOMP_SYSCALL_NAMES_H_
