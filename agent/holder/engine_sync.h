// The agent's side of the holder: keeps the store's copy of every served
// listener in step with the engine's registry, and restores the registry
// from the store at start. The store is the built-in holder process
// (holder.h) or systemd's fd store (fdstore.h), behind ListenerStore.
#ifndef SECCOMP_AGENT_HOLDER_ENGINE_SYNC_H_
#define SECCOMP_AGENT_HOLDER_ENGINE_SYNC_H_

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>
#include <utility>
#include <vector>
#include <string>

#include "agent/common/fd.h"
#include "agent/common/log.h"
#include "agent/engine/engine.h"
#include "agent/holder/fdstore.h"
#include "agent/holder/holder.h"
#include "agent/holder/listener_store.h"

namespace seccomp_agent::holder {

// --holder_socket: "" means holder.sock next to `agent_socket`; "none"
// disables the holder (returns "").
inline std::string HolderSocketPath(const std::string& flag, const std::string& agent_socket) {
  if (flag == "none") return "";
  if (!flag.empty()) return flag;
  size_t slash = agent_socket.rfind('/');
  return (slash == std::string::npos ? std::string(".") : agent_socket.substr(0, slash)) +
         "/holder.sock";
}

// Where the listener copies live (--holder_mode).
enum class HolderMode { kAuto, kBuiltin, kSystemd, kNone };

inline absl::StatusOr<HolderMode> ParseHolderMode(const std::string& s) {
  if (s == "auto") return HolderMode::kAuto;
  if (s == "builtin") return HolderMode::kBuiltin;
  if (s == "systemd") return HolderMode::kSystemd;
  if (s == "none") return HolderMode::kNone;
  return absl::InvalidArgumentError("--holder_mode: \"" + s +
                                    "\" is not auto, builtin, systemd or none");
}

// auto: systemd when this agent's entries came back in LISTEN_FDS, or when
// NOTIFY_SOCKET is set and --holder_socket was left empty; otherwise
// builtin, with "none" for --holder_socket=none (as before the fd store
// existed). An explicit --holder_socket keeps its old meaning.
inline HolderMode ResolveHolderMode(HolderMode mode, const std::string& holder_socket_flag,
                                    bool fdstore_entries_passed) {
  if (mode != HolderMode::kAuto) return mode;
  if (fdstore_entries_passed) return HolderMode::kSystemd;
  if (holder_socket_flag == "none") return HolderMode::kNone;
  const char* ns = getenv("NOTIFY_SOCKET");
  if (holder_socket_flag.empty() && ns != nullptr && *ns != '\0') return HolderMode::kSystemd;
  return HolderMode::kBuiltin;
}

// Starts (if needed) and connects to the built-in holder at `path`; ""
// disables. Failure is not fatal: one warning, and nullptr.
inline std::unique_ptr<ListenerStore> ConnectBuiltinHolder(const std::string& path) {
  if (path.empty()) {
    spdlog::info("holder: disabled; restarts will lose containers");
    return nullptr;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  std::string self = n > 0 ? std::string(exe, n) : "/proc/self/exe";
  absl::Status s = EnsureHolderRunning(path, self);
  if (s.ok()) {
    auto c = HolderClient::Connect(path);
    if (c.ok()) {
      spdlog::info("holder: connected to {}", path);
      return *std::move(c);
    }
    s = c.status();
  }
  spdlog::warn("holder gone: restarts will lose containers ({}: {})", path,
               std::string(s.message()));
  return nullptr;
}

// The store for `mode` (after ResolveHolderMode). `fdstore_entries`: this
// agent's entries from LISTEN_FDS (SplitFdStoreEntries); a mode other than
// systemd removes them from systemd's store, unrestored, with a warning.
inline std::unique_ptr<ListenerStore> OpenListenerStore(HolderMode mode,
                                                        const std::string& holder_socket_path,
                                                        std::vector<NamedFd> fdstore_entries) {
  if (mode == HolderMode::kSystemd) {
    return std::make_unique<SystemdFdStore>(std::move(fdstore_entries));
  }
  if (!fdstore_entries.empty()) {
    size_t fds = fdstore_entries.size();
    int names = DiscardFdStoreEntries(std::move(fdstore_entries));
    spdlog::warn(
        "holder: systemd passed back {} fds of {} stored containers, but --holder_mode is not "
        "systemd: removed from the fd store unrestored (those containers get ENOSYS)",
        fds, names);
  }
  if (mode == HolderMode::kNone) {
    spdlog::info("holder: disabled; restarts will lose containers");
    return nullptr;
  }
  return ConnectBuiltinHolder(holder_socket_path);
}

class EngineSync : public DecisionObserver {
 public:
  // `store` null: no holder (restarts lose containers).
  explicit EngineSync(std::unique_ptr<ListenerStore> store) : store_(std::move(store)) {}
  // The built-in holder at `path` ("" disables), as before --holder_mode.
  explicit EngineSync(const std::string& path) : store_(ConnectBuiltinHolder(path)) {}

  // The agent stops cleanly: see ListenerStore::OnCleanStop.
  void OnCleanStop() {
    if (store_ != nullptr) store_->OnCleanStop();
  }

  // Re-registers every container the store kept. Returns how many.
  int Restore(Engine& engine) {
    if (store_ == nullptr) return 0;
    const std::string from = store_->name();
    auto list = store_->List();
    if (!list.ok()) {
      spdlog::warn("{}: LIST failed: {}", from, std::string(list.status().message()));
      return 0;
    }
    int restored = 0;
    std::vector<std::pair<std::string, pid_t>> pids;
    for (auto& e : *list) {
      std::string id = e.info.id;
      pid_t pid = e.info.init_pid;
      ContainerInfo info = e.info;
      absl::Status s = engine.AddContainer(std::move(e.info), std::move(e.listener));
      if (!s.ok()) {
        spdlog::error("container {} not restored from {}: {}", id, from, std::string(s.message()));
        store_->Del(info);
        continue;
      }
      ++restored;
      pids.emplace_back(id, pid);
      spdlog::info("container {} restored from {}: pid {}", id, from, pid);
    }
    spdlog::info("{}: {} containers restored", from, restored);
    if (!pids.empty()) nudge_ = std::thread([this, pids] { RecoverOrphans(pids); });
    return restored;
  }

  // Hands the store a copy of a newly registered container's listener.
  void Store(const ContainerInfo& info, int listener) {
    if (store_ == nullptr || !store_->alive()) return;
    absl::Status s = store_->Put(info, listener);
    if (!s.ok()) {
      spdlog::warn("{}: container {} not stored: {}", store_->name(), info.id,
                   std::string(s.message()));
    }
  }

  ~EngineSync() override {
    if (nudge_.joinable()) nudge_.join();
  }

  void OnDecision(const DecisionRecord&) override {}
  void OnContainerRemoved(const ContainerInfo& info, const std::string&) override {
    if (store_ != nullptr) store_->Del(info);
  }

 private:
  // A notification the killed agent had RECV'd but not answered stays SENT
  // in the kernel and is never delivered again: its task would wait forever.
  // Once the restored listeners have been drained, a task still (twice,
  // 200 ms apart) waiting on a notification gets its syscall restarted
  // (SIGSTOP + SIGCONT, see RestartWaitingSyscalls) so it traps again and
  // is decided by this agent's policy.
  void RecoverOrphans(const std::vector<std::pair<std::string, pid_t>>& pids) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    for (const auto& [id, pid] : pids) {
      auto first = TasksWaitingOnSeccompNotification(pid);
      if (first.empty()) continue;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      auto second = TasksWaitingOnSeccompNotification(pid);
      bool still = false;
      for (pid_t t : second) {
        if (std::find(first.begin(), first.end(), t) != first.end()) still = true;
      }
      if (!still) continue;
      int n = RestartWaitingSyscalls(pid);
      spdlog::warn(
          "container {}: {} process(es) waited on a notification the previous agent received "
          "but never answered; restarted their syscalls (SIGSTOP/SIGCONT)",
          id, n);
    }
  }

  std::unique_ptr<ListenerStore> store_;
  std::thread nudge_;
};

}  // namespace seccomp_agent::holder

#endif  // SECCOMP_AGENT_HOLDER_ENGINE_SYNC_H_
