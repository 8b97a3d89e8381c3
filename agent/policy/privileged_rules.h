// The rules of the privileged actions (sysinfo, mknod, mount, setxattr): which syscalls each
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
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/policy/action_checks.h"
#include "proto/seccompagent/v1/policy.pb.h"

namespace seccomp_agent {

namespace v1 = ::seccompagent::v1;

// The largest device numbers the kernel's dev_t encoding carries.
inline constexpr uint32_t kMaxDeviceMajor = (1u << 12) - 1;
inline constexpr uint32_t kMaxDeviceMinor = (1u << 20) - 1;

bool SysinfoAppliesTo(absl::string_view syscall);   // sysinfo
bool MknodAppliesTo(absl::string_view syscall);     // mknod, mknodat
bool MountAppliesTo(absl::string_view syscall);     // mount
bool SetxattrAppliesTo(absl::string_view syscall);  // setxattr, lsetxattr, fsetxattr

// A rule violation: ActionProblem (action_checks.h), the field inside the
// action ("allow[1].major") and why.
std::optional<ActionProblem> CheckSysinfo(const v1::Sysinfo& s);
std::optional<ActionProblem> CheckMknod(const v1::Mknod& m);
std::optional<ActionProblem> CheckMount(const v1::Mount& m);
std::optional<ActionProblem> CheckSetxattr(const v1::Setxattr& x);

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

// A mount(2) call as the task made it (the strings are the agent's copies).
struct MountCall {
  std::string fstype;
  uint64_t flags = 0;  // the flags register
  std::string data;    // "" when the data pointer was NULL
};

// What the agent mounts for an allowed call: the entry, the data options
// split into name and value ("" for a bare flag option), and the mount
// attributes (MOUNT_ATTR_*: always NOSUID and NODEV).
struct MountPlan {
  const v1::MountType* entry = nullptr;
  std::vector<std::pair<std::string, std::string>> options;
  uint64_t attrs = 0;
};

// The plan when the call is allowed by `m`, else why not ("fstype ext4 is
// not in the allow list", "flag MS_BIND is not allowed", "option uid is not
// listed for tmpfs").
struct MountVerdict {
  std::optional<MountPlan> plan;
  std::string refusal;
};
MountVerdict DecideMount(const v1::Mount& m, const MountCall& call);

// The kernel's limits (linux/limits.h): a name of 1..255 bytes, a value of
// at most 64 KiB.
inline constexpr size_t kXattrNameMax = 255;
inline constexpr size_t kXattrSizeMax = 65536;
inline constexpr absl::string_view kTrustedPrefix = "trusted.";

// What the agent does with one attribute name: set it (listed trusted.*),
// let the kernel run the task's own call (a name outside trusted.*, which
// needs no privilege), or refuse it (a trusted.* name no glob lists).
enum class XattrVerdict { kSet, kContinue, kRefuse };
XattrVerdict DecideXattrName(const v1::Setxattr& x, absl::string_view name);

// Whether mount(2)'s flags ask for a bind mount or a bind remount (MS_BIND
// set): those are decided by DecideBind, everything else by DecideMount.
bool IsBindCall(uint64_t flags);

// A bind mount call with its paths resolved in the task's root as the
// kernel would resolve them for the task (source "" for a remount).
struct BindCall {
  uint64_t flags = 0;
  std::string source;
  std::string target;
};

// What the agent does for an allowed bind: clone the source (recursively
// with MS_REC) and attach it at the target, or for a remount
// (MS_REMOUNT|MS_BIND) add mount attributes to the mount at the target.
// `attrs` are only ever set, never cleared: NOSUID and NODEV always, RDONLY
// when asked or when the entry is readonly, NOEXEC when asked.
struct BindPlan {
  const v1::MountType* entry = nullptr;
  bool remount = false;
  bool recursive = false;
  uint64_t attrs = 0;
};

// The plan when a bind entry of `m` matches both paths (a remount: the
// target), else why not ("flag MS_BIND is not allowed" when `m` has no bind
// entry, "flag MS_MOVE is not allowed on a bind mount", "bind /a -> /b
// matches no bind entry").
struct BindVerdict {
  std::optional<BindPlan> plan;
  std::string refusal;
};
BindVerdict DecideBind(const v1::Mount& m, const BindCall& call);

// DecideBind's refusal that depends on the flags alone ("" when the flags
// may be a bind of `m`): checked before the paths are resolved.
std::string BindFlagsRefusal(const v1::Mount& m, uint64_t flags);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_POLICY_PRIVILEGED_RULES_H_
