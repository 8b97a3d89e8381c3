// The notification engine: one epoll set over every container's listener fd
// (and a pidfd of each container's init), served by a leader/follower pool.
//
// Exactly one worker (the leader) waits in epoll_wait at a time. It takes a
// ready listener, NOTIF_RECVs the notification, and decides. A decision the
// engine can make itself (allow, deny, return, log: sub-microsecond) is
// answered by the leader, which stays leader: the hot path is epoll_wait ->
// RECV -> SEND on one warm thread, with no hand-off and no re-arm (measured:
// a pool that woke a different thread per notification cost ~1 us more).
// Before anything that may take long (a substitution through the injector, a
// plugin), the leader hands leadership to a follower and then does the slow
// work on its own; so one container's slow decision never stalls another's
// notifications. Listener fds are level-triggered: since only the leader
// waits and it consumes the notification (RECV) before handing over, a
// notification is never seen twice.
#ifndef SECCOMP_AGENT_ENGINE_ENGINE_H_
#define SECCOMP_AGENT_ENGINE_ENGINE_H_

#include <linux/seccomp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/common/fd.h"
#include "agent/engine/decision_log.h"
#include "agent/policy/event.h"
#include "agent/policy/policy.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent {

// Answers actions the engine cannot answer itself: substitutions (the
// injector) and plugin decisions. Runs on a worker that is no longer the
// leader, so it may take its time; it may also finish asynchronously.
class ActionHandler {
 public:
  virtual ~ActionHandler() = default;
  struct Outcome {
    std::string result;   // for the decision log: "fd 5", "EPERM", "12", ...
    std::string backend;  // "kernel", "emulation", "plugin:NAME", ...
    std::string rule;     // when set, replaces the rule name in the log
    std::string action;   // when set, replaces the action name in the log
    bool task_gone = false;
  };
  using Done = std::function<void(absl::StatusOr<Outcome>)>;
  // Carries out `action` for the pending notification `notif` and calls
  // `done` exactly once, inline or later from any thread. OK: the handler
  // sent the reply. An error: no reply was sent; the engine then answers
  // with EngineOptions::fallback_errno (fail closed). `ev` and the listener
  // stay valid until `done` runs.
  // `policy` is the policy that chose `action` (rule `rule_index`); it
  // stays alive until `done` runs.
  virtual void Handle(int listener, const seccomp_notif& notif, const SyscallEvent& ev,
                      const v1::Action& action, int rule_index, const CompiledPolicy& policy,
                      Done done) = 0;
};

// Sees every decision after its reply was sent (metrics, the admin API's
// live stream). Called on the deciding thread: must be cheap and must not
// block; `r.event` is valid only during the call.
class DecisionObserver {
 public:
  virtual ~DecisionObserver() = default;
  virtual void OnDecision(const DecisionRecord& r) = 0;
  // A container was registered / removed.
  virtual void OnContainerAdded(const ContainerInfo& info) {}
  virtual void OnContainerRemoved(const ContainerInfo& info, const std::string& reason) {}
};

struct EngineOptions {
  int workers = 4;
  // Bytes of a write() the decoder captures for policies and the log.
  size_t max_write_capture = 4096;
  // Ask for SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP on each listener (6.6+).
  bool sync_wakeup = true;
  // Errno when a substitution or plugin cannot be carried out.
  int fallback_errno = 1;  // EPERM
};

// Per-container counters, readable while the engine runs.
struct ContainerStats {
  std::atomic<uint64_t> notifications{0};
  std::atomic<uint64_t> allowed{0};
  std::atomic<uint64_t> denied{0};
  std::atomic<uint64_t> returned{0};
  std::atomic<uint64_t> substituted{0};
  std::atomic<uint64_t> task_gone{0};
  std::atomic<uint64_t> errors{0};
};

struct ContainerSnapshot {
  ContainerInfo info;
  uint64_t notifications, allowed, denied, returned, substituted, task_gone, errors;
  int64_t registered_unix_ns;
};

class Engine {
 public:
  Engine(EngineOptions opts, UnotifyInterface& unotify, std::shared_ptr<const CompiledPolicy> policy,
         DecisionLog* decision_log);
  ~Engine();

  absl::Status Start();
  // Stops the workers and closes every listener (tasks then get ENOSYS).
  void Stop();

  // Takes ownership of a container's listener and starts serving it.
  absl::Status AddContainer(ContainerInfo info, UniqueFd listener);

  // Stops serving every container with this OCI id (e.g. an OCI poststop
  // hook said it is gone). Returns how many were removed.
  int RemoveContainer(const std::string& id, const std::string& reason);

  // Replaces the policy; decisions in flight finish with the old one.
  void SetPolicy(std::shared_ptr<const CompiledPolicy> policy);
  std::shared_ptr<const CompiledPolicy> policy() const;
  void SetActionHandler(ActionHandler* handler) { handler_ = handler; }
  // Set before Start(); not owned.
  void AddObserver(DecisionObserver* o) { observers_.push_back(o); }
  // Whether a decision log or an observer wants decoded arguments even when
  // the policy does not need them.
  void SetDecodeForObservers(bool on) { decode_for_observers_ = on; }

  std::vector<ContainerSnapshot> Containers() const;
  size_t container_count() const;

  // Called after a container is removed (id, reason).
  void OnRemoved(std::function<void(const std::string&, const std::string&)> cb) {
    on_removed_ = std::move(cb);
  }

 private:
  struct Entry;
  void Worker();
  // `lead` is the leadership lock; a slow path releases it.
  void HandleListener(const std::shared_ptr<Entry>& e, std::unique_lock<std::mutex>& lead);
  void Decide(const std::shared_ptr<Entry>& e, const seccomp_notif& n,
              std::unique_lock<std::mutex>& lead);
  void Remove(const std::shared_ptr<Entry>& e, const std::string& reason);
  std::shared_ptr<Entry> Lookup(uint64_t key) const;
  bool IsRuntimeTask(const Entry& e, pid_t pid);
  struct Pending;
  void Finish(const std::shared_ptr<Pending>& p, absl::StatusOr<ActionHandler::Outcome> out);

  EngineOptions opts_;
  UnotifyInterface& unotify_;
  DecisionLog* decision_log_;
  ActionHandler* handler_ = nullptr;
  std::function<void(const std::string&, const std::string&)> on_removed_;
  std::vector<DecisionObserver*> observers_;
  bool decode_for_observers_ = false;
  void Record(const DecisionRecord& rec);

  mutable std::mutex policy_mu_;
  std::shared_ptr<const CompiledPolicy> policy_;

  UniqueFd epoll_;
  UniqueFd stop_event_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> workers_;
  std::mutex lead_mu_;  // held by the one worker that waits in epoll_wait

  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<Entry>> entries_;
  uint64_t next_key_ = 1;
  bool sync_wakeup_supported_ = true;
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_ENGINE_H_
