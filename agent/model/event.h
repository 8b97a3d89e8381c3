// The agent's vocabulary (agent/model): who a container is and what one
// trapped syscall looks like once decoded. The handoff fills ContainerInfo;
// the notification engine fills SyscallEvent (decoding only what the
// compiled policy asks for); the policy matcher, the decision log and the
// plugin client read them. Nothing here depends on any other part.
#ifndef SECCOMP_AGENT_MODEL_EVENT_H_
#define SECCOMP_AGENT_MODEL_EVENT_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace seccomp_agent {

// What the agent did for a container that is bounded over the container's
// life, whatever namespaces its tasks make.
struct ContainerUsage {
  // Mounts the agent was asked to add (and went on to try) in mount
  // namespaces other than the container's own: ones its tasks made.
  std::atomic<uint32_t> nested_mounts{0};
};

// A number no other container registration in this process has had.
inline uint64_t NewContainerInstance() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

// Identity of a container, from the runtime's handoff message.
struct ContainerInfo {
  std::string id;      // OCI container id (state.id)
  pid_t init_pid = 0;  // host pid of the container init (message pid)
  std::string bundle;  // state.bundle
  std::map<std::string, std::string> annotations;
  std::string metadata;  // listenerMetadata ("" when absent)
  std::string runtime;   // "runc", "crun" or "unknown" (from ociVersion etc.)
  // Kubernetes identity from CRI-O / containerd annotations ("" when absent).
  std::string pod_namespace;
  std::string pod_name;
  std::string container_name;
  // This registration, kept by every copy of the info (the engine's is a
  // copy of the handoff's): a container id can come back (`runc run ID`
  // again once the first one is deleted) as another container, with other
  // labels, which what was decided for the first must not reach.
  uint64_t instance = NewContainerInstance();
  // Shared by every copy of this container's info.
  std::shared_ptr<ContainerUsage> usage = std::make_shared<ContainerUsage>();
};

// A decoded socket address.
struct Sockaddr {
  int family = 0;                // AF_INET, AF_INET6, AF_UNIX, or other
  std::string address;           // "127.0.0.1", "::1", "/path", "@abstract", "" for other
  std::optional<uint16_t> port;  // host byte order, inet families only
  std::vector<uint8_t> raw;      // the bytes as read from the task
};

// Which decoded values a policy needs for a syscall; the engine reads only
// those from the task (each read costs a process_vm_readv).
enum DecodeNeeds : uint32_t {
  kNeedNothing = 0,
  kNeedPath = 1u << 0,
  kNeedSockaddr = 1u << 1,
  kNeedWriteBytes = 1u << 2,
};

struct SyscallEvent {
  const ContainerInfo* container = nullptr;  // never null in the engine
  uint64_t id = 0;                           // notification id
  pid_t pid = 0;                             // host tid of the trapped task
  uint32_t arch = 0;                         // AUDIT_ARCH_* of the trap
  int nr = -1;                               // syscall number for that arch
  std::string syscall;                       // libseccomp name, e.g. "mkdirat"
  uint64_t args[6] = {0, 0, 0, 0, 0, 0};
  uint64_t instruction_pointer = 0;
  // When the agent received the notification: steady_clock nanoseconds
  // since its epoch (0: not known). The one clock read of a decision;
  // a plugin cache lookup checks expiry against it.
  int64_t received_ns = 0;

  // True while the container's runtime (e.g. `runc init`) has not exec'd the
  // workload yet and this task is the runtime's own process. Such calls
  // pass when no rule names them explicitly (see README).
  bool runtime_phase = false;

  // Decoded arguments: snapshots read from the task's memory. They can be
  // changed by the task right after the read, which is why a CONTINUE on
  // them is not a security boundary (use a substitution instead).
  std::optional<std::string> path;   // first path argument
  std::optional<std::string> path2;  // second path (rename family)
  std::optional<int64_t> dirfd;      // *at family dirfd (as int32)
  // When path/path2 is relative: the absolute, lexically normalized path in
  // the task's root, resolved against its cwd or dirfd (from /proc/PID/cwd
  // or /proc/PID/fd/N). Policy path globs match these when set, so
  // `cd /forbidden && mkdir x` is caught by "/forbidden/**".
  std::optional<std::string> abs_path;
  std::optional<std::string> abs_path2;
  std::optional<Sockaddr> sockaddr;        // bind/connect
  std::optional<int64_t> fd;               // write and similar
  std::optional<std::string> write_bytes;  // bytes of write (up to a cap)
  std::optional<uint64_t> write_count;     // the count argument of write
  std::string decode_error;                // non-empty when a requested read failed
  // Why `path` could not be read (EFAULT: unreadable memory, ENAMETOOLONG:
  // no NUL within PATH_MAX, ...); 0 when it was read or not asked for.
  int path_errno = 0;
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_MODEL_EVENT_H_
