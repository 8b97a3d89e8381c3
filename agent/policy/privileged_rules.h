// The rules of the privileged actions (sysinfo, mknod): which syscalls each
// applies to and what a valid action says. One place, used by the policy
// loader (validate.cc) and the plugin decision validator
// (agent/plugin/decision.cc), so a file rule and a plugin decision are held
// to the same rules. Pure: no I/O.
#ifndef SECCOMP_AGENT_POLICY_PRIVILEGED_RULES_H_
#define SECCOMP_AGENT_POLICY_PRIVILEGED_RULES_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "proto/seccompagent/v1/policy.pb.h"

namespace seccomp_agent {

namespace v1 = ::seccompagent::v1;

// The largest device numbers the kernel's dev_t encoding carries.
inline constexpr uint32_t kMaxDeviceMajor = (1u << 12) - 1;
inline constexpr uint32_t kMaxDeviceMinor = (1u << 20) - 1;

bool SysinfoAppliesTo(absl::string_view syscall);  // sysinfo
bool MknodAppliesTo(absl::string_view syscall);    // mknod, mknodat

// A rule violation: the field inside the action ("allow[1].major") and why.
struct ActionProblem {
  std::string field;
  std::string message;
};

std::optional<ActionProblem> CheckSysinfo(const v1::Sysinfo& s);
std::optional<ActionProblem> CheckMknod(const v1::Mknod& m);

// A device node request decoded from mknod's mode and dev arguments.
struct DeviceRequest {
  char type = 0;  // 'c', 'b', or 0 for a node that is not a device (file, FIFO, socket)
  uint32_t major = 0;
  uint32_t minor = 0;
};

// mode (S_IFMT bits) and the kernel's 32-bit dev encoding (new_decode_dev).
DeviceRequest DecodeMknod(uint64_t mode_arg, uint64_t dev_arg);

// The allow entry that lists `req`, or null.
const v1::DeviceNode* FindAllowedDevice(const v1::Mknod& m, const DeviceRequest& req);

// "c 1:3".
std::string DeviceText(const DeviceRequest& req);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_POLICY_PRIVILEGED_RULES_H_
