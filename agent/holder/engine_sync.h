// The agent's side of the holder: keeps the holder's copy of every served
// listener in step with the engine's registry, and restores the registry
// from the holder at start.
#ifndef SECCOMP_AGENT_HOLDER_ENGINE_SYNC_H_
#define SECCOMP_AGENT_HOLDER_ENGINE_SYNC_H_

#include <fcntl.h>
#include <limits.h>
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
#include "agent/holder/holder.h"

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

class EngineSync : public DecisionObserver {
 public:
  // Starts (if needed) and connects to the holder at `path`; "" disables.
  // Failure is not fatal: one warning, and the agent runs as without one.
  explicit EngineSync(const std::string& path) {
    if (path.empty()) {
      spdlog::info("holder: disabled; restarts will lose containers");
      return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    std::string self = n > 0 ? std::string(exe, n) : "/proc/self/exe";
    absl::Status s = EnsureHolderRunning(path, self);
    if (s.ok()) {
      auto c = HolderClient::Connect(path);
      if (c.ok()) {
        client_ = *std::move(c);
        spdlog::info("holder: connected to {}", path);
        return;
      }
      s = c.status();
    }
    spdlog::warn("holder gone: restarts will lose containers ({}: {})", path,
                 std::string(s.message()));
  }

  // Re-registers every container the holder keeps. Returns how many.
  int Restore(Engine& engine) {
    if (client_ == nullptr) return 0;
    auto list = client_->List();
    if (!list.ok()) {
      spdlog::warn("holder: LIST failed: {}", std::string(list.status().message()));
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
        spdlog::error("container {} not restored from holder: {}", id, std::string(s.message()));
        client_->Del(info);
        continue;
      }
      ++restored;
      pids.emplace_back(id, pid);
      spdlog::info("container {} restored from holder: pid {}", id, pid);
    }
    spdlog::info("holder: {} containers restored", restored);
    if (!pids.empty()) nudge_ = std::thread([this, pids] { RecoverOrphans(pids); });
    return restored;
  }

  // Hands the holder a copy of a newly registered container's listener.
  void Store(const ContainerInfo& info, int listener) {
    if (client_ == nullptr || !client_->alive()) return;
    absl::Status s = client_->Put(info, listener);
    if (!s.ok()) spdlog::warn("holder: container {} not stored: {}", info.id, std::string(s.message()));
  }

  ~EngineSync() override {
    if (nudge_.joinable()) nudge_.join();
  }

  void OnDecision(const DecisionRecord&) override {}
  void OnContainerRemoved(const ContainerInfo& info, const std::string&) override {
    if (client_ != nullptr) client_->Del(info);
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

  std::unique_ptr<HolderClient> client_;
  std::thread nudge_;
};

}  // namespace seccomp_agent::holder

#endif  // SECCOMP_AGENT_HOLDER_ENGINE_SYNC_H_
