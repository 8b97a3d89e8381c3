#include "agent/holder/engine_sync.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <map>

#include "agent/common/log.h"
#include "agent/holder/holder.h"

namespace seccomp_agent::holder {
namespace {

// How often a restored container is asked whether it is quiet, and for how
// long at the most: a poll interval and a bound, not what decides.
constexpr absl::Duration kQuietPoll = absl::Milliseconds(1);
constexpr absl::Duration kQuietGiveUp = absl::Seconds(30);

}  // namespace

absl::StatusOr<HolderMode> ParseHolderMode(const std::string& s) {
  if (s == "auto") return HolderMode::kAuto;
  if (s == "builtin") return HolderMode::kBuiltin;
  if (s == "systemd") return HolderMode::kSystemd;
  if (s == "none") return HolderMode::kNone;
  return absl::InvalidArgumentError("--holder_mode: \"" + s +
                                    "\" is not auto, builtin, systemd or none");
}

HolderMode ResolveHolderMode(HolderMode mode, const std::string& holder_socket_flag,
                             bool fdstore_entries_passed) {
  if (mode != HolderMode::kAuto) return mode;
  if (fdstore_entries_passed) return HolderMode::kSystemd;
  if (holder_socket_flag == "none") return HolderMode::kNone;
  const char* ns = getenv("NOTIFY_SOCKET");
  if (holder_socket_flag.empty() && ns != nullptr && *ns != '\0') return HolderMode::kSystemd;
  return HolderMode::kBuiltin;
}

std::unique_ptr<ListenerStore> ConnectBuiltinHolder(const std::string& path) {
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

std::unique_ptr<ListenerStore> OpenListenerStore(HolderMode mode,
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

EngineSync::EngineSync(std::unique_ptr<ListenerStore> store) : store_(std::move(store)) {}

EngineSync::EngineSync(const std::string& path) : store_(ConnectBuiltinHolder(path)) {}

EngineSync::~EngineSync() { StopRecovery(); }

void EngineSync::StopRecovery() {
  {
    std::lock_guard<std::mutex> l(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (nudge_.joinable()) nudge_.join();
}

void EngineSync::OnCleanStop() {
  if (store_ != nullptr) store_->OnCleanStop();
}

int EngineSync::Restore(Engine& engine) {
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
  if (!pids.empty()) {
    nudge_ = std::thread([this, &engine, pids] { RecoverOrphans(engine, pids); });
  }
  return restored;
}

void EngineSync::Store(const ContainerInfo& info, int listener) {
  if (store_ == nullptr || !store_->alive()) return;
  absl::Status s = store_->Put(info, listener);
  if (!s.ok()) {
    spdlog::warn("{}: container {} not stored: {}", store_->name(), info.id,
                 std::string(s.message()));
  }
}

void EngineSync::OnContainerRemoved(const ContainerInfo& info, const std::string&) {
  if (store_ != nullptr) store_->Del(info);
}

bool EngineSync::Pause(absl::Duration d) {
  std::unique_lock<std::mutex> l(stop_mu_);
  return !stop_cv_.wait_for(l, absl::ToChronoNanoseconds(d), [this] { return stopping_; });
}

bool EngineSync::WaitQuiet(const Engine& engine, const std::string& id) {
  const absl::Time give_up = absl::Now() + kQuietGiveUp;
  for (;;) {
    absl::StatusOr<bool> quiet = engine.Quiet(id);
    if (!quiet.ok()) return false;  // removed meanwhile
    if (*quiet) return true;
    if (absl::Now() > give_up) {
      spdlog::warn(
          "container {}: never quiet for {}; tasks waiting on a notification the "
          "previous agent received are not looked for",
          id, absl::FormatDuration(kQuietGiveUp));
      return false;
    }
    if (!Pause(kQuietPoll)) return false;
  }
}

// A notification the killed agent had RECV'd but never answered stays SENT:
// its task waits in seccomp_do_user_notification for good. One still queued
// in a restored listener, or received by this agent, is answered. So: the
// tasks waiting now; then an instant at which the container is quiet
// (Engine::Quiet: nothing queued, nothing received unanswered), by which
// every notification they could be waiting on that any agent will answer
// was answered; then the tasks waiting again. One that has not slept anew
// since the first look (same voluntary context switch count) waits on the
// notification it waited on before that instant: an orphan. Its syscall is
// restarted (RestartSyscalls, through pidfds) so it traps again.
void EngineSync::RecoverOrphans(const Engine& engine,
                                const std::vector<std::pair<std::string, pid_t>>& pids) {
  if (!WchanNamesFunctions()) {
    spdlog::warn(
        "holder: /proc/PID/wchan names no functions on this kernel (no CONFIG_KALLSYMS): a task "
        "left waiting on a notification the previous agent received cannot be found and waits "
        "until it is signalled");
  }
  std::vector<std::map<pid_t, uint64_t>> waits;  // the first look at each, before any wait
  for (const auto& [id, pid] : pids) waits.push_back(SeccompWaits(pid));
  for (size_t i = 0; i < pids.size(); ++i) {
    const auto& [id, pid] = pids[i];
    const std::map<pid_t, uint64_t>& before = waits[i];
    if (before.empty()) continue;
    if (!WaitQuiet(engine, id)) {
      if (stopping()) return;
      continue;
    }
    std::vector<pid_t> orphans;
    for (const auto& [tid, switches] : SeccompWaits(pid)) {
      auto it = before.find(tid);
      if (it != before.end() && it->second == switches) orphans.push_back(tid);
    }
    if (orphans.empty()) continue;
    int n = RestartSyscalls(pid, orphans);
    spdlog::warn(
        "container {}: {} process(es) waited on a notification the previous agent received "
        "but never answered; restarted their syscalls (SIGSTOP/SIGCONT)",
        id, n);
  }
}

bool EngineSync::stopping() {
  std::lock_guard<std::mutex> l(stop_mu_);
  return stopping_;
}

}  // namespace seccomp_agent::holder
