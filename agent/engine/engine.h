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
//
// Fairness: level-triggered epoll hands ready listeners out round-robin, so
// a flooding container gets one notification served per turn like any
// other. On top, an optional per-container token bucket (EngineOptions::
// container_rate) caps what one container may ask for; at the limit the
// engine either parks the container's listener (no EPOLLIN) until the bucket
// refills, re-arming it from one timerfd in the same epoll set, or denies
// over-limit notifications with an errno. The bucket is touched only by the
// leader, so it needs no lock; a container without a limit pays one branch.
#ifndef SECCOMP_AGENT_ENGINE_ENGINE_H_
#define SECCOMP_AGENT_ENGINE_ENGINE_H_

#include <linux/seccomp.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/common/fd.h"
#include "agent/engine/decision_log.h"
#include "agent/engine/local_reply.h"
#include "agent/engine/rate_limiter.h"
#include "agent/model/event.h"
#include "agent/policy/policy.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent {

// Answers actions the engine cannot answer itself: substitutions (the
// injector) and plugin decisions. Runs on a worker that is no longer the
// leader, so it may take its time; it may also finish asynchronously.
class ActionHandler {
 public:
  virtual ~ActionHandler() = default;
  using Effect = ::seccomp_agent::Effect;  // local_reply.h
  struct Outcome {
    Effect effect = Effect::kSubstituted;
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
  // A reply the engine sends itself, as for a local rule.
  struct QuickReply {
    LocalReply reply;  // allow, deny or return (local_reply.h)
    // For the decision log: "allow", "deny", "return" and the backend
    // ("plugin:NAME (cached)"). Both must outlive the handler's decision:
    // string literals or strings the handler owns (nothing is allocated
    // for a cache hit's log record).
    absl::string_view action;
    absl::string_view backend;
  };
  // Optional fast path, asked by the leader BEFORE it hands off leadership:
  // true and `*out` when `action` has a plain answer at once, without
  // blocking (a plugin decision already in the cache); the engine sends it.
  // False: Handle follows.
  virtual bool TryQuickReply(const SyscallEvent& ev, const v1::Action& action, QuickReply* out) {
    return false;
  }
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

// The policy a container is decided by, together with the handler built
// for it (the injector and plugins of that policy). Immutable: a reload
// installs a new one, and a decision in flight keeps the one it started
// with until it is done. Subclasses own what `handler` uses.
struct BoundPolicy {
  virtual ~BoundPolicy() = default;
  std::string name;  // "" when the engine serves one unnamed policy
  uint64_t version = 0;
  // Null: the policy is unknown or failed to load (`error` says why); the
  // container's notifications are answered with
  // EngineOptions::policy_error_errno (fail closed).
  std::shared_ptr<const CompiledPolicy> policy;
  std::string error;
  ActionHandler* handler = nullptr;  // null: the engine's SetActionHandler
  // "NAME@VERSION" for the decision log and the registry; "" when unnamed.
  std::string Label() const;
};

// Where a container finds the current version of the policy it is bound
// to. Bound once, at AddContainer; what it holds changes on reload.
class PolicySlot {
 public:
  explicit PolicySlot(std::shared_ptr<const BoundPolicy> p) : current_(std::move(p)) {}
  std::shared_ptr<const BoundPolicy> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }
  void Set(std::shared_ptr<const BoundPolicy> p) {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = std::move(p);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const BoundPolicy> current_;
};

// What the engine does with a container's notification when its token
// bucket is empty (see EngineOptions::container_rate).
enum class RateLimitAction {
  // Stop reading the container's listener until the bucket refills: its
  // trapped tasks wait in the kernel (backpressure); no call fails.
  kDelay,
  // Answer the notification with EngineOptions::rate_limit_errno at once,
  // without evaluating the policy.
  kDeny,
};
const char* RateLimitActionName(RateLimitAction a);  // "delay" / "deny"

struct EngineOptions {
  int workers = 4;
  // Bytes of a write() the decoder captures for policies and the log.
  size_t max_write_capture = 4096;
  // Ask for SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP on each listener (6.6+).
  bool sync_wakeup = true;
  // Errno when a substitution or plugin cannot be carried out.
  int fallback_errno = 1;  // EPERM
  // Errno for every notification of a container whose policy is unknown or
  // failed to load (BoundPolicy::policy null).
  int policy_error_errno = 1;  // EPERM

  // Per-container token bucket: at most `container_rate` notifications per
  // second on average, `container_burst` at once. 0: no limit (the default:
  // the right number depends on the host and the workloads; see README
  // "Fairness and rate limits"). The OCI annotations seccomp-agent.io/rate
  // and seccomp-agent.io/burst may lower (never raise) them per container.
  double container_rate = 0;
  // Bucket size; 0 means one second's worth (max(container_rate, 1)).
  double container_burst = 0;
  RateLimitAction rate_limit_action = RateLimitAction::kDelay;
  int rate_limit_errno = 11;  // EAGAIN (kDeny only)
  // At most one "throttled" summary line per container per interval.
  int64_t rate_limit_log_interval_ns = 10'000'000'000;
  // Delay mode: a parked listener stays parked at least this long and then
  // serves the tokens gathered in one go, so a high rate does not mean a
  // timer wake-up per notification. Measured (fairness_e2e_test, 1000/s
  // flood, CPU-busy 2-core host): 1 ms let the quiet container's p99 reach
  // 2-7x its unloaded value, as the agent's frequent wake-ups cost it its
  // wake-up preemption; 10 ms kept it within 0.9-1.8x.
  int64_t rate_limit_min_park_ns = 10'000'000;

  // A worker inside one handler call (a substitution: the emulation runs in
  // the worker) for longer than this counts as stuck: StuckWorkers() > 0,
  // and health reports NOT_SERVING until it comes back.
  int64_t stuck_after_ns = 10'000'000'000;
};

// The annotations that lower a container's limits (values: notifications
// per second / bucket size, decimal).
inline constexpr char kRateAnnotation[] = "seccomp-agent.io/rate";
inline constexpr char kBurstAnnotation[] = "seccomp-agent.io/burst";

// A per-container counter that also counts into an engine-wide total. The
// total never goes down (Prometheus counter semantics): a container that is
// removed keeps its share in it.
class Counter {
 public:
  void CountInto(std::atomic<uint64_t>* total) { total_ = total; }
  uint64_t operator++() { return Add(1) + 1; }
  uint64_t operator++(int) { return Add(1); }
  Counter& operator+=(uint64_t n) {
    Add(n);
    return *this;
  }
  uint64_t load() const { return v_.load(std::memory_order_relaxed); }

 private:
  uint64_t Add(uint64_t n) {
    if (total_ != nullptr) total_->fetch_add(n, std::memory_order_relaxed);
    return v_.fetch_add(n, std::memory_order_relaxed);
  }
  std::atomic<uint64_t> v_{0};
  std::atomic<uint64_t>* total_ = nullptr;
};

// Counters of one kind of thing: per container (Counter) and engine-wide
// (std::atomic, monotonic).
template <typename C>
struct Counts {
  C notifications, allowed, denied, returned, substituted, task_gone, errors;
  // Rate limit hits: delay mode counts each time the listener was parked
  // (each park holds back at least one pending notification), deny mode
  // each notification answered with rate_limit_errno.
  C rate_limited;
  // Delay mode: nanoseconds the listener spent parked.
  C throttled_ns;
};

// Per-container counters, readable while the engine runs. What a decision
// did: allowed (CONTINUE), denied (an errno), returned (a spoofed value),
// substituted (the injector ran a substitute), whoever decided (a local
// rule or a plugin).
struct ContainerStats : Counts<Counter> {
  void CountInto(Counts<std::atomic<uint64_t>>* t) {
    notifications.CountInto(&t->notifications);
    allowed.CountInto(&t->allowed);
    denied.CountInto(&t->denied);
    returned.CountInto(&t->returned);
    substituted.CountInto(&t->substituted);
    task_gone.CountInto(&t->task_gone);
    errors.CountInto(&t->errors);
    rate_limited.CountInto(&t->rate_limited);
    throttled_ns.CountInto(&t->throttled_ns);
  }
};

// Engine-wide totals since start, over every container ever served.
struct EngineTotals {
  uint64_t notifications = 0, allowed = 0, denied = 0, returned = 0, substituted = 0, task_gone = 0,
           errors = 0, rate_limited = 0, throttled_ns = 0;
};

struct ContainerSnapshot {
  ContainerInfo info;
  uint64_t notifications, allowed, denied, returned, substituted, task_gone, errors;
  int64_t registered_unix_ns;
  uint64_t rate_limited = 0;
  uint64_t throttled_ns = 0;
  double rate = 0;  // the container's limit in force, 0 = none
  double burst = 0;
  std::string policy;  // BoundPolicy::Label() of the version in force
};

class Engine {
 public:
  Engine(EngineOptions opts, UnotifyInterface& unotify,
         std::shared_ptr<const CompiledPolicy> policy, DecisionLog* decision_log);
  ~Engine();

  absl::Status Start();
  // Stops the workers, waits for the decisions handed to the ActionHandler
  // to finish, and closes every listener (tasks then get ENOSYS).
  void Stop();

  // Takes ownership of a container's listener and starts serving it with
  // the policy in `slot`; null: the binder's slot (SetBinder), else the
  // engine's own policy (SetPolicy).
  absl::Status AddContainer(ContainerInfo info, UniqueFd listener,
                            std::shared_ptr<PolicySlot> slot = nullptr);
  // Chooses a container's policy at AddContainer. Set before Start.
  using Binder = std::function<std::shared_ptr<PolicySlot>(const ContainerInfo&)>;
  void SetBinder(Binder binder) { binder_ = std::move(binder); }

  // Stops serving every container with this OCI id (e.g. an OCI poststop
  // hook said it is gone). Returns how many were removed.
  int RemoveContainer(const std::string& id, const std::string& reason);

  // Replaces the engine's own policy (containers added without a slot or
  // binder); decisions in flight finish with the old one.
  void SetPolicy(std::shared_ptr<const CompiledPolicy> policy);
  std::shared_ptr<const CompiledPolicy> policy() const;
  void SetActionHandler(ActionHandler* handler) { handler_ = handler; }
  // Set before Start(); not owned.
  void AddObserver(DecisionObserver* o) { observers_.push_back(o); }

  std::vector<ContainerSnapshot> Containers() const;
  size_t container_count() const;
  // Whether every listener of container `id` was, at one instant during the
  // call, quiet: no notification queued in the kernel to be received, none
  // being received, none received and not yet answered. A task of it that
  // waited on a notification before that instant and still waits on the
  // same one after it waits on one no agent will answer (the holder's
  // orphan recovery, agent/holder/engine_sync.cc). NotFound when no
  // listener of `id` is served.
  absl::StatusOr<bool> Quiet(const std::string& id) const;
  // Rate limit hits over every container ever served (removed ones too).
  uint64_t rate_limited_total() const { return rate_limited_total_.load(); }
  // Monotonic totals over every container served since start (removed ones
  // included).
  EngineTotals Totals() const;
  const EngineOptions& options() const { return opts_; }
  // Workers inside one handler call for longer than stuck_after_ns. A
  // container's substitutions run one at a time (its "lane"), so one
  // container can hold at most one worker however many threads it traps
  // from; this says when some are held anyway (health: NOT_SERVING).
  int StuckWorkers() const;

 private:
  struct Entry;
  void Worker();
  // `lead` is the leadership lock; a slow path releases it.
  // `over_limit`: deny mode, the bucket is empty.
  void HandleListener(const std::shared_ptr<Entry>& e, std::unique_lock<std::mutex>& lead,
                      bool over_limit = false);
  void Decide(const std::shared_ptr<Entry>& e, const seccomp_notif& n,
              std::unique_lock<std::mutex>& lead);
  void Remove(const std::shared_ptr<Entry>& e, const std::string& reason);
  std::shared_ptr<Entry> Lookup(uint64_t key) const;
  bool IsRuntimeTask(const Entry& e, pid_t pid);
  struct Pending;
  void Finish(const std::shared_ptr<Pending>& p, absl::StatusOr<ActionHandler::Outcome> out);
  // Runs `p` through the handler in this container's lane: at once when no
  // other worker is in it, else queued for the worker that is (which
  // drains the queue before it leaves).
  void RunInLane(std::shared_ptr<Pending> p);
  void CallHandler(const std::shared_ptr<Pending>& p);
  void FinishGone(const std::shared_ptr<Pending>& p);
  // Rate limiting; only reached for a container that has a limit.
  void Park(const std::shared_ptr<Entry>& e, int64_t now);  // caller leads
  void DenyOverLimit(const std::shared_ptr<Entry>& e, const seccomp_notif& n);
  // Answers `err` at once, logged under `rule` (no policy evaluation).
  void DenyWith(const std::shared_ptr<Entry>& e, SyscallEvent& ev, int64_t t0, const char* rule,
                int err);
  void OnTimer();                               // caller leads
  void ArmTimerLocked();                        // throttle_mu_ held
  void NoteRateLimited(Entry& e, int64_t now);  // caller leads

  EngineOptions opts_;
  UnotifyInterface& unotify_;
  DecisionLog* decision_log_;
  ActionHandler* handler_ = nullptr;
  std::vector<DecisionObserver*> observers_;
  // Decisions handed to handler_ and not finished; Stop waits for them.
  std::mutex inflight_mu_;
  std::condition_variable inflight_cv_;
  int inflight_ = 0;
  void NoteRuntimePhase(Entry& e, SyscallEvent& ev);
  void SendAndRecord(Entry& e, const seccomp_notif_resp& resp, DecisionRecord& rec, int64_t t0);
  // Every received notification ends here, once (after its reply).
  void Record(Entry& e, const DecisionRecord& rec);

  std::shared_ptr<PolicySlot> default_slot_;
  Binder binder_;
  v1::Action policy_error_action_;  // deny with opts_.policy_error_errno

  UniqueFd epoll_;
  UniqueFd stop_event_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> workers_;
  // Per worker: when its current handler call began (steady ns), 0 if none.
  std::unique_ptr<std::atomic<int64_t>[]> busy_since_;
  int busy_slots_ = 0;
  std::atomic<int> next_slot_{0};
  std::mutex lead_mu_;  // held by the one worker that waits in epoll_wait

  // Parked (rate-limited, delay mode) listeners by resume time, and the one
  // timerfd in the epoll set that fires at the earliest. Only the throttle
  // paths take throttle_mu_; a container without a limit never does.
  UniqueFd timer_;
  RateLimiter::Settings limit_settings_;  // every container's, from opts_
  std::mutex throttle_mu_;
  std::set<std::pair<int64_t, std::shared_ptr<Entry>>> parked_;  // guarded by throttle_mu_
  int64_t timer_armed_ns_ = 0;                                   // guarded by throttle_mu_
  std::atomic<uint64_t> rate_limited_total_{0};
  Counts<std::atomic<uint64_t>> totals_{};

  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<Entry>> entries_;
  uint64_t next_key_ = 1;
  bool sync_wakeup_supported_ = true;
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_ENGINE_H_
