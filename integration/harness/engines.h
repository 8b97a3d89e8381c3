// Real container engines for the end-to-end tests: podman 4.3 (rootful, a
// private storage root under a temp dir) and containerd 1.6 with ctr (its own
// root, state and socket under a temp dir), both run inside a private mount
// namespace so nothing they create is visible to, or left on, the host.
#ifndef SECCOMP_AGENT_INTEGRATION_HARNESS_ENGINES_H_
#define SECCOMP_AGENT_INTEGRATION_HARNESS_ENGINES_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "integration/harness/subprocess.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::integration {

// Moves the calling (still single-threaded) process into a private mount
// namespace: mounts stop propagating to the host, /sys/fs/cgroup/unified is
// unmounted (crun refuses this host's hybrid cgroups), and /run and /dev/shm
// are fresh tmpfs mounts, so /run/seccomp-agent (the DaemonSet's socket
// directory), the runtimes' state dirs, the containerd shims' sockets and
// podman's shared-memory locks are all private to the test.
absl::Status EnterPrivateMountNamespace();

// Tools a test needs: an error naming every one not on PATH.
absl::Status RequireTools(const std::vector<std::string>& tools);

// Runs argv; ok with stdout when it exited 0, else an error with everything.
absl::StatusOr<std::string> Must(const std::vector<std::string>& argv,
                                 absl::Duration timeout = absl::Seconds(120));

// podman with its own storage root, run root, tmp dir, hooks dir and network
// config dir under `dir`, cgroupfs and file events (no systemd here), and a
// containers.conf (CONTAINERS_CONF) that asks for no ulimits (the defaults
// exceed this sandbox's hard RLIMIT_NOFILE) and makes a local image the pods'
// infra image (no registry, no catatonit).
class Podman {
 public:
  static absl::StatusOr<std::unique_ptr<Podman>> Create(const std::string& dir);
  ~Podman();  // removes every pod, container and image of its storage

  const std::string& dir() const { return dir_; }
  const std::string& hooks_dir() const { return hooks_dir_; }
  std::vector<std::string> Argv(const std::vector<std::string>& args) const;
  ProcessResult Run(const std::vector<std::string>& args,
                    absl::Duration timeout = absl::Seconds(120)) const;
  absl::StatusOr<std::string> Must(const std::vector<std::string>& args,
                                   absl::Duration timeout = absl::Seconds(120)) const;
  // The full id of a container (by name).
  absl::StatusOr<std::string> Id(const std::string& name) const;
  // The OCI config.json podman handed to the runtime (after precreate hooks).
  absl::StatusOr<nlohmann::json> OciConfig(const std::string& id) const;
  // Imports `rootfs_tar` as `name` (PATH=/bin, CMD /pause).
  absl::Status ImportRootfs(const std::string& rootfs_tar, const std::string& name) const;
  // Removes every pod and container (best effort).
  void RemoveAllContainers() const;
  // ... and every image.
  void RemoveAll() const;

 private:
  explicit Podman(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_, hooks_dir_;
};

// containerd started with its own config under `dir`, stopped by the
// destructor (after removing what is left in its namespace).
class Containerd {
 public:
  static absl::StatusOr<std::unique_ptr<Containerd>> Start(const std::string& dir);
  ~Containerd();

  // ctr -a SOCKET -n sa-e2e ARGS...
  std::vector<std::string> Ctr(const std::vector<std::string>& args) const;
  const std::string& log_path() const { return log_; }

 private:
  explicit Containerd(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_, socket_, log_;
  std::unique_ptr<Subprocess> process_;
};

// A busybox rootfs for the engines: BuildBusyboxRootfs plus /pause (an infra
// command that sleeps) and /etc/motd.alt (a redirect target), tarred.
absl::Status BuildEngineRootfsTar(const std::string& rootfs, const std::string& tar);

// An OCI image layout made with umoci from `rootfs`, tarred as an OCI
// archive (what `ctr images import` reads).
absl::Status BuildOciArchive(const std::string& rootfs, const std::string& layout,
                             const std::string& archive);

}  // namespace seccomp_agent::integration

#endif  // SECCOMP_AGENT_INTEGRATION_HARNESS_ENGINES_H_
