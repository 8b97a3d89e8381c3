// Pure functions around the plugin API messages: what the agent sends
// (BuildNotification), whether what a plugin answered may be executed
// (ValidateDecision), and the keys of the decision cache. No I/O, no
// globals: the fuzz target and the dispatcher call the same code.
#ifndef SECCOMP_AGENT_PLUGIN_DECISION_H_
#define SECCOMP_AGENT_PLUGIN_DECISION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "agent/model/event.h"
#include "proto/seccompagent/v1/plugin.pb.h"

namespace seccomp_agent {
namespace v1 = ::seccompagent::v1;

namespace plugin {

// Limits shared by the validator and the dispatcher.
inline constexpr size_t kMaxInjectBytes = size_t{1} << 20;  // SECCOMP_NOTIF_INJECT_MAX_BYTES
inline constexpr size_t kMaxReplaceBytes = size_t{1} << 20;
inline constexpr size_t kMaxSockaddrLen = 128;  // sizeof(struct sockaddr_storage)
inline constexpr size_t kMaxReasonBytes = 256;

// Fills the request for `ev`. `max_write_bytes` caps Decoded.write.data
// (truncated is set when fewer than count bytes are sent).
v1::Notification BuildNotification(const SyscallEvent& ev, size_t max_write_bytes);

// What the validator needs to know about the trapped syscall and the policy.
struct ValidationContext {
  int nr = -1;                            // trapped syscall nr (SyscallEvent::nr)
  uint32_t arch = 0;                      // AUDIT_ARCH_* of the trap
  absl::string_view syscall;              // libseccomp name ("openat")
  uint64_t args[6] = {0, 0, 0, 0, 0, 0};  // raw trapped args
  // Directories redirect_open targets must lie in (Policy.redirect_roots).
  // Empty: every redirect_open decision is invalid (as in the policy file).
  const std::vector<std::string>* redirect_roots = nullptr;
};

ValidationContext ContextFor(const SyscallEvent& ev,
                             const std::vector<std::string>* redirect_roots);

// OK when the agent may execute `d` for the trapped syscall; otherwise
// InvalidArgument naming the broken rule ("inject.nr 2 != trapped nr 257").
// The rules are documented on seccompagent.v1.Decision in plugin.proto.
// NoOpinion is valid everywhere. The cache hint is checked too (a known
// scope). Pure: no allocation beyond the error text, never crashes on any
// input (fuzzed).
absl::Status ValidateDecision(const v1::Decision& d, const ValidationContext& ctx);

// Whether a spoofed `return` is acceptable for `syscall` (see plugin.proto).
bool ReturnAllowedFor(absl::string_view syscall);

// The native AUDIT_ARCH_* of this build (inject works only there).
uint32_t NativeAuditArch();

// "x86_64", "x86", "aarch64", ..., or "0x%x".
std::string ArchName(uint32_t audit_arch);

// A plain decision: what the engine sends itself, like a local rule's
// reply (no injector, no follow-up). Stored by value in the decision cache,
// so that a hit copies a few bytes and allocates nothing.
struct PlainDecision {
  enum class Kind : uint8_t { kAllow, kDeny, kReturn, kNoOpinion };
  Kind kind = Kind::kAllow;
  int32_t errno_code = 0;  // kDeny
  int64_t value = 0;       // kReturn
};

// True and `*out` when `d` is allow, deny, return or no_opinion.
bool AsPlain(const v1::Decision& d, PlainDecision* out);

// ValidateDecision for a plain decision (the same rules); no allocation
// when it is valid.
bool PlainValid(const PlainDecision& p, const ValidationContext& ctx);

// Cache keys (bytes; opaque). Both start with the plugin name.
// kSyscallContainer: plugin, container (its registration:
// ContainerInfo::instance, not the id), arch, nr.
std::string SyscallContainerKey(absl::string_view plugin, const SyscallEvent& ev);
// kExactArgs: the above plus everything the plugin was shown that can
// differ between calls: the raw args (where a pointer argument the engine
// decoded, i.e. path, sockaddr, write buffer, counts as its decoded bytes
// rather than its address), the decoded values, runtime_phase and the
// decode error. Not the pid, notification id or instruction pointer.
std::string ExactArgsKey(absl::string_view plugin, const SyscallEvent& ev);
// The same keys written into `*k` (cleared first): a buffer reused across
// calls allocates only when a key outgrows it.
void FillSyscallContainerKey(std::string* k, absl::string_view plugin, const SyscallEvent& ev);
void FillExactArgsKey(std::string* k, absl::string_view plugin, const SyscallEvent& ev);

}  // namespace plugin
}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_PLUGIN_DECISION_H_
