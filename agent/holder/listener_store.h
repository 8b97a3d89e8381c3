// The narrow interface EngineSync keeps in step with the engine's registry:
// somewhere outside the agent that holds a copy of every served listener
// (with its ContainerInfo) across agent restarts. Two implementations:
// HolderClient (the built-in holder process, holder.h) and SystemdFdStore
// (systemd's per-service fd store, fdstore.h).
#ifndef SECCOMP_AGENT_HOLDER_LISTENER_STORE_H_
#define SECCOMP_AGENT_HOLDER_LISTENER_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/common/fd.h"
#include "agent/model/event.h"

namespace seccomp_agent::holder {

// One container kept by a store, with a fresh copy of its listener.
struct StoredListener {
  std::string key;  // the store's own name for the entry (for logs)
  ContainerInfo info;
  UniqueFd listener;
};

class ListenerStore {
 public:
  virtual ~ListenerStore() = default;
  // For log lines: "container X restored from <name>".
  virtual const char* name() const = 0;
  // Every entry kept from the previous agent, each with its listener.
  virtual absl::StatusOr<std::vector<StoredListener>> List() = 0;
  // Keeps a copy of `listener` (the store takes its own reference; the
  // caller still owns `listener`). Replaces an entry of the same container.
  virtual absl::Status Put(const ContainerInfo& info, int listener) = 0;
  // Forgets the container's entry; never blocks for long.
  virtual void Del(const ContainerInfo& info) = 0;
  // False once the store is known to be gone (logged once by the store).
  virtual bool alive() const = 0;
  // The agent is stopping cleanly (SIGTERM/SIGINT). Default: nothing (the
  // systemd fd store lives in PID 1).
  virtual void OnCleanStop() {}
};

}  // namespace seccomp_agent::holder

#endif  // SECCOMP_AGENT_HOLDER_LISTENER_STORE_H_
