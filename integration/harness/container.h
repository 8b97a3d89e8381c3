// Real OCI containers for end-to-end tests: a busybox rootfs, a bundle whose
// linux.seccomp hands the listener to an agent socket, and runc or crun
// (crun inside a private mount namespace without the cgroup2 mount, since it
// refuses this host's hybrid cgroups) run in the foreground with a timeout.
#ifndef SECCOMP_AGENT_INTEGRATION_HARNESS_CONTAINER_H_
#define SECCOMP_AGENT_INTEGRATION_HARNESS_CONTAINER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "integration/harness/subprocess.h"

namespace seccomp_agent::integration {

enum class Runtime { kRunc, kCrun };
const char* RuntimeName(Runtime r);  // "runc" / "crun"

// A directory under /tmp (short paths: unix socket paths are limited to 107
// bytes), removed with everything in it on destruction.
class TempDir {
 public:
  static absl::StatusOr<TempDir> Make(const std::string& prefix);
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  TempDir() = default;
  std::string path_;
};

// A container id unique across tests and runs: "<prefix>-<pid>-<n>".
std::string UniqueContainerId(const std::string& prefix);

// Builds a busybox rootfs at `dir` from /usr/bin/busybox (busybox-static):
// /bin/busybox plus one symlink per applet, /proc /dev /sys /tmp, an empty
// /forbidden (so a denied mkdir there would have succeeded without the
// agent), /etc/hostname = `hostname`, /etc/passwd and /etc/group for root.
absl::Status BuildBusyboxRootfs(const std::string& dir, const std::string& hostname);

struct SeccompConfig {
  std::string listener_path;
  std::optional<std::string> listener_metadata;
  // Syscalls given SCMP_ACT_NOTIFY; everything else is SCMP_ACT_ALLOW.
  std::vector<std::string> notify_syscalls;
};

struct ContainerConfig {
  std::vector<std::string> args;  // process.args
  std::string hostname = "e2e-host";
  std::optional<SeccompConfig> seccomp;
  // OCI annotations (the runtime passes them to the agent in state).
  std::map<std::string, std::string> annotations;
  // No pid namespace of its own: the container sees the host's pids (and
  // its /proc is the host pid namespace's), as with `--pid=host`.
  bool host_pid_namespace = false;
  // process.user uid/gid (both) when set; root otherwise.
  std::optional<std::pair<uint32_t, uint32_t>> user;
  // No capabilities at all (every set empty) and noNewPrivileges.
  bool no_capabilities = false;
  // Capabilities added to runc's default set (every set but ambient), e.g.
  // "CAP_SYS_ADMIN"; ignored with no_capabilities.
  std::vector<std::string> add_capabilities;
  // linux.resources.memory.limit in bytes.
  std::optional<int64_t> memory_limit;
  // linux.rootfsPropagation ("shared", "slave", "private", ...) when set.
  std::optional<std::string> rootfs_propagation;
  // A user namespace of its own when set: container ids 0..65535 are host
  // ids N..N+65535, and the root filesystem (and what Install copies) is
  // chowned to them, as an image unpacked for a user namespace is.
  std::optional<uint32_t> userns_host_id;
};

// One container: its temp dir holds bundle/config.json, bundle/rootfs and
// the runtime's state root. The destructor force-deletes the container
// (ignoring "does not exist") and removes the directory.
class Container {
 public:
  static absl::StatusOr<std::unique_ptr<Container>> Create(Runtime runtime, const std::string& id,
                                                           const ContainerConfig& config);
  ~Container();

  const std::string& id() const { return id_; }
  Runtime runtime() const { return runtime_; }
  const std::string& bundle() const { return bundle_; }
  // Host path of the container's root filesystem.
  const std::string& rootfs() const { return rootfs_; }

  // `<runtime> run` in the foreground until exit or `timeout`.
  ProcessResult Run(absl::Duration timeout);
  // `<runtime> run` in the foreground, but returns at once; the caller waits.
  absl::StatusOr<std::unique_ptr<Subprocess>> Start();
  // `<runtime> delete -f`; true if the runtime said yes.
  bool ForceDelete();
  // Copies the host file `from` (a static test binary) to `to`, a path in
  // the root filesystem, mode 0755.
  absl::Status Install(const std::string& from, const std::string& to) const;

 private:
  Container(Runtime runtime, std::string id, TempDir dir);
  std::vector<std::string> RuntimeArgv(const std::vector<std::string>& args) const;

  Runtime runtime_;
  std::string id_;
  TempDir dir_;
  std::string bundle_, rootfs_, state_root_;
  std::optional<uint32_t> userns_host_id_;
};

// The syscalls the end-to-end bundles trap (SCMP_ACT_NOTIFY).
inline const std::vector<std::string>& DefaultTrappedSyscalls() {
  static const auto* const v = new std::vector<std::string>{"mkdir", "mkdirat", "openat"};
  return *v;
}

// A finished `sh -c script` container whose listener went to `socket`.
struct WorkloadRun {
  std::unique_ptr<Container> container;
  ProcessResult result;
  // stdout then stderr, for substring checks.
  std::string output() const { return result.out + result.err; }
};

// Creates a busybox container running `sh -c script` that traps `syscalls`
// to the agent at `socket`, runs it in the foreground, and returns it (not
// yet deleted, so the test can inspect its rootfs).
absl::StatusOr<WorkloadRun> RunWorkload(Runtime runtime, const std::string& id,
                                        const std::string& socket, const std::string& script,
                                        const std::vector<std::string>& syscalls,
                                        absl::Duration timeout = absl::Seconds(60));

}  // namespace seccomp_agent::integration

#endif  // SECCOMP_AGENT_INTEGRATION_HARNESS_CONTAINER_H_
