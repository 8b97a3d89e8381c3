// What a container's cgroup says about memory, swap and tasks, for sysinfo
// answered from the cgroup (privileged.h). Reads the host's cgroup file
// system (the agent's mount namespace), never a container's: the cgroup
// path comes from the kernel (/proc/TID/cgroup, relative to the agent's
// cgroup namespace root, i.e. the host's).
//
// Both hierarchies: cgroup v2 (unified: /sys/fs/cgroup/cgroup.controllers
// exists; memory.max, memory.current, memory.swap.max, memory.swap.current,
// memory.stat shmem, pids.current) and v1 (controllers under
// /sys/fs/cgroup/<name>: memory.limit_in_bytes, memory.usage_in_bytes,
// memory.memsw.* when swap accounting is on, memory.stat total_shmem,
// pids/pids.current). Limits are the smallest on the way from the task's
// cgroup up to the root: a container that made itself a child cgroup
// without a limit still sees its own.
#ifndef SECCOMP_AGENT_INJECTOR_CGROUP_VIEW_H_
#define SECCOMP_AGENT_INJECTOR_CGROUP_VIEW_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace seccomp_agent::injector {

struct CgroupMemory {
  int version = 0;                     // 1 or 2
  std::string path;                    // the memory cgroup, e.g. "/user.slice/x"
  std::optional<uint64_t> mem_limit;   // bytes; none: no limit anywhere up the tree
  uint64_t mem_usage = 0;              // bytes
  std::optional<uint64_t> swap_limit;  // swap alone (v1: memsw minus mem); none: no limit
  std::optional<uint64_t> swap_usage;  // none: swap not accounted
  uint64_t shmem = 0;
  std::optional<uint64_t> tasks;  // pids.current; none: no pids controller
};

// `proc_cgroup` is the text of /proc/TID/cgroup; `fs_root` the cgroup file
// system's mount point ("/sys/fs/cgroup"; tests pass a fake tree).
absl::StatusOr<CgroupMemory> ReadCgroupMemory(absl::string_view proc_cgroup,
                                              const std::string& fs_root);

// The same for a live task.
absl::StatusOr<CgroupMemory> ReadTaskCgroupMemory(pid_t tid,
                                                  const std::string& fs_root = "/sys/fs/cgroup");

}  // namespace seccomp_agent::injector

#endif  // SECCOMP_AGENT_INJECTOR_CGROUP_VIEW_H_
