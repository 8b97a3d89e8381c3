// The agent's side of the holder: keeps the store's copy of every served
// listener in step with the engine's registry, and restores the registry
// from the store at start. The store is the built-in holder process
// (holder.h) or systemd's fd store (fdstore.h), behind ListenerStore.
#ifndef SECCOMP_AGENT_HOLDER_ENGINE_SYNC_H_
#define SECCOMP_AGENT_HOLDER_ENGINE_SYNC_H_

#include <sys/types.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/engine/engine.h"
#include "agent/holder/fdstore.h"
#include "agent/holder/listener_store.h"

namespace seccomp_agent::holder {

// Where the listener copies live (--holder_mode).
enum class HolderMode { kAuto, kBuiltin, kSystemd, kNone };

absl::StatusOr<HolderMode> ParseHolderMode(const std::string& s);

// auto: systemd when this agent's entries came back in LISTEN_FDS, or when
// NOTIFY_SOCKET is set and --holder_socket was left empty; otherwise
// builtin, with "none" for --holder_socket=none (as before the fd store
// existed). An explicit --holder_socket keeps its old meaning.
HolderMode ResolveHolderMode(HolderMode mode, const std::string& holder_socket_flag,
                             bool fdstore_entries_passed);

// Starts (if needed) and connects to the built-in holder at `path`; ""
// disables. Failure is not fatal: one warning, and nullptr.
std::unique_ptr<ListenerStore> ConnectBuiltinHolder(const std::string& path);

// The store for `mode` (after ResolveHolderMode). `fdstore_entries`: this
// agent's entries from LISTEN_FDS (SplitFdStoreEntries); a mode other than
// systemd removes them from systemd's store, unrestored, with a warning.
std::unique_ptr<ListenerStore> OpenListenerStore(HolderMode mode,
                                                 const std::string& holder_socket_path,
                                                 std::vector<NamedFd> fdstore_entries);

class EngineSync : public DecisionObserver {
 public:
  // `store` null: no holder (restarts lose containers).
  explicit EngineSync(std::unique_ptr<ListenerStore> store);
  // The built-in holder at `path` ("" disables), as before --holder_mode.
  explicit EngineSync(const std::string& path);
  // Calls StopRecovery.
  ~EngineSync() override;

  // The agent stops cleanly: see ListenerStore::OnCleanStop.
  void OnCleanStop();
  // Re-registers every container the store kept. Returns how many. Then,
  // on a thread of its own that uses `engine` until StopRecovery, restarts
  // the syscalls of the restored containers' tasks that wait on a
  // notification the previous agent received and never answered.
  int Restore(Engine& engine);
  // Ends that thread (at once); call before `engine` is destroyed.
  void StopRecovery();
  // Hands the store a copy of a newly registered container's listener.
  void Store(const ContainerInfo& info, int listener);

  void OnDecision(const DecisionRecord&) override {}
  void OnContainerRemoved(const ContainerInfo& info, const std::string&) override;

 private:
  void RecoverOrphans(const Engine& engine, const std::vector<std::pair<std::string, pid_t>>& pids);
  // Until container `id` is quiet (true), or it is gone, or StopRecovery
  // ran, or it never was for kQuietGiveUp (false).
  bool WaitQuiet(const Engine& engine, const std::string& id);
  bool stopping();
  // Waits `d` unless the destructor runs first (then false).
  bool Pause(absl::Duration d);

  std::unique_ptr<ListenerStore> store_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by stop_mu_
  std::thread nudge_;
};

}  // namespace seccomp_agent::holder

#endif  // SECCOMP_AGENT_HOLDER_ENGINE_SYNC_H_
