#include "agent/engine/engine.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/audit.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <list>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/common/log.h"
#include "agent/common/status.h"
#include "agent/engine/decoder.h"
#include "agent/seccomp/syscall_names.h"
#include "agent/seccomp/task_path.h"

namespace seccomp_agent {
namespace {

// epoll tokens: key << 1 | kind.
constexpr uint64_t kKindListener = 0;
constexpr uint64_t kKindPidfd = 1;
constexpr uint64_t kStopToken = ~0ULL;
constexpr uint64_t kTimerToken = ~0ULL - 1;  // the rate limiter's timerfd

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr int kX32SyscallBit = 0x40000000;

// The calling worker's busy_since_ slot (null outside the workers).
thread_local std::atomic<int64_t>* tls_busy = nullptr;

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// The identity of /proc/PID/exe (the binary the task runs), and whether
// that binary is inside the task's own root. A workload can rename itself
// (PR_SET_NAME) or be called "crun", but it cannot run the runtime's
// binary: runc init runs a memfd copy of runc, crun its host binary,
// neither reachable from the container's root.
struct ExeId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool ok = false;
  bool in_root = false;
};

ExeId ExeOf(pid_t pid) {
  ExeId id;
  char exe[64], root[64];
  snprintf(exe, sizeof(exe), "/proc/%d/exe", pid);
  snprintf(root, sizeof(root), "/proc/%d/root", pid);
  struct stat st;
  if (stat(exe, &st) != 0) return id;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.ok = true;
  char text[4096];
  ssize_t n = readlink(exe, text, sizeof(text) - 1);
  UniqueFd rootfd(::open(root, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (n > 0 && text[0] == '/' && rootfd) {
    text[n] = '\0';
    open_how how{};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    UniqueFd f(static_cast<int>(syscall(SYS_openat2, rootfd.get(), text, &how, sizeof(how))));
    struct stat fs;
    id.in_root = f && fstat(f.get(), &fs) == 0 && fs.st_dev == st.st_dev && fs.st_ino == st.st_ino;
  }
  return id;
}

// A positive decimal from an annotation, or 0 when absent or invalid.
double AnnotationNumber(const ContainerInfo& info, const char* key) {
  auto it = info.annotations.find(key);
  if (it == info.annotations.end()) return 0;
  double v = 0;
  if (!absl::SimpleAtod(it->second, &v) || !std::isfinite(v) || v <= 0) {
    spdlog::warn("container {}: ignoring annotation {}=\"{}\": not a positive number", info.id, key,
                 it->second);
    return 0;
  }
  return v;
}

// A decoded path without its resolution (symlink(2)'s target is text and
// is never resolved).
bool PathUnresolved(const SyscallEvent& ev) {
  const bool text = ev.syscall == "symlink" || ev.syscall == "symlinkat";
  return (ev.path && !ev.abs_path && !text) || (ev.path2 && !ev.abs_path2);
}

// The stricter of two limits, 0 meaning none.
double Stricter(double a, double b) {
  if (a <= 0) return b;
  if (b <= 0) return a;
  return std::min(a, b);
}

// The counter a reply's effect adds to.
void CountEffect(ContainerStats& stats, ActionHandler::Effect effect) {
  switch (effect) {
    case ActionHandler::Effect::kAllowed:
      stats.allowed++;
      break;
    case ActionHandler::Effect::kDenied:
      stats.denied++;
      break;
    case ActionHandler::Effect::kReturned:
      stats.returned++;
      break;
    case ActionHandler::Effect::kSubstituted:
      stats.substituted++;
      break;
  }
}

}  // namespace

std::string BoundPolicy::Label() const { return PolicyLabel(name, version); }

const char* RateLimitActionName(RateLimitAction a) {
  return a == RateLimitAction::kDeny ? "deny" : "delay";
}

struct Engine::Entry {
  uint64_t key = 0;
  ContainerInfo info;
  UniqueFd listener;
  UniqueFd pidfd;
  std::shared_ptr<PolicySlot> slot;  // the policy it is bound to
  // Cleared (for good) the first time the init pid traps with a name that is
  // not the runtime's: from then on the workload runs.
  std::atomic<bool> runtime_phase{true};
  // The init's binary at registration, when it was the runtime's (not a
  // file in the container's root): the runtime phase lasts while the init
  // still runs it, i.e. until its first execve.
  bool runtime_exe_ok = false;
  dev_t runtime_exe_dev = 0;
  ino_t runtime_exe_ino = 0;
  std::atomic<bool> removed{false};
  // The substitution lane: at most one worker runs this container's
  // handler calls at a time; the others' are queued for it.
  std::mutex lane_mu;
  bool lane_busy = false;  // guarded by lane_mu
  // A list, not a deque: an empty std::deque already holds ~600 bytes (its
  // map and first block), more than the rest of an idle container.
  std::list<std::shared_ptr<Pending>> lane;  // guarded by lane_mu
  ContainerStats stats;
  int64_t registered_unix_ns = 0;

  // Rate limit, fixed at AddContainer; unconfigured: none.
  RateLimiter limiter;
  // NOTIF_RECVs begun on the listener, and those settled: failed, or their
  // notification answered (or its task gone) and recorded. Quiet() reads
  // them; begun is counted before the ioctl, so a notification the kernel
  // has handed over is never missed.
  std::atomic<uint64_t> recv_begun{0};
  std::atomic<uint64_t> settled{0};
};

// A decision handed to the ActionHandler: owns what the reply and the log
// need until the handler is done.
struct Engine::Pending {
  std::shared_ptr<Entry> entry;              // keeps the listener open
  std::shared_ptr<const BoundPolicy> bound;  // keeps `action` and the handler alive
  SyscallEvent ev;
  DecisionRecord rec;
  uint64_t id = 0;
  int64_t t0 = 0;
  seccomp_notif notif{};
  const v1::Action* action = nullptr;  // in *bound->policy
  int rule_index = -1;
  ActionHandler* handler = nullptr;  // bound->handler, else the engine's
  CallRoot root;                     // the task root this call's paths were resolved in
};

Engine::Engine(EngineOptions opts, UnotifyInterface& unotify,
               std::shared_ptr<const CompiledPolicy> policy, DecisionLog* decision_log)
    : opts_(opts), unotify_(unotify), decision_log_(decision_log) {
  SetPolicy(std::move(policy));
  policy_error_action_.mutable_deny()->set_errno_code(opts_.policy_error_errno);
  limit_settings_.deny = opts_.rate_limit_action == RateLimitAction::kDeny;
  limit_settings_.deny_errno = ErrnoName(opts_.rate_limit_errno);
  limit_settings_.min_park_ns = opts_.rate_limit_min_park_ns;
  limit_settings_.log_interval_ns = opts_.rate_limit_log_interval_ns;
}

Engine::~Engine() { Stop(); }

absl::Status Engine::Start() {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return ErrnoStatus(errno, "epoll_create1");
  stop_event_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_event_) return ErrnoStatus(errno, "eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: wakes every worker once set
  ev.data.u64 = kStopToken;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, stop_event_.get(), &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl add stop eventfd");
  }
  // Wakes the leader when a parked (rate-limited) listener may resume.
  timer_.reset(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!timer_) return ErrnoStatus(errno, "timerfd_create");
  epoll_event tev{};
  tev.events = EPOLLIN;
  tev.data.u64 = kTimerToken;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, timer_.get(), &tev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl add timerfd");
  }
  if (opts_.container_rate > 0) {
    spdlog::info(
        "rate limit per container: {} notifications/s, burst {}, at the limit: {}{}",
        opts_.container_rate,
        opts_.container_burst > 0 ? opts_.container_burst : std::max(opts_.container_rate, 1.0),
        RateLimitActionName(opts_.rate_limit_action),
        opts_.rate_limit_action == RateLimitAction::kDeny ? " " + ErrnoName(opts_.rate_limit_errno)
                                                          : std::string());
  }
  (void)SyscallName(AUDIT_ARCH_X86_64, 0);  // builds the name table off the hot path
  int n = opts_.workers > 0 ? opts_.workers : 4;
  busy_since_.reset(new std::atomic<int64_t>[n]);
  for (int i = 0; i < n; ++i) busy_since_[i].store(0);
  busy_slots_ = n;
  for (int i = 0; i < n; ++i) workers_.emplace_back([this] { Worker(); });
  return absl::OkStatus();
}

void Engine::Stop() {
  if (stopping_.exchange(true)) return;
  if (stop_event_) {
    uint64_t one = 1;  // level-triggered: every leader in turn sees it
    (void)!write(stop_event_.get(), &one, sizeof(one));
  }
  for (auto& t : workers_) t.join();
  workers_.clear();
  {
    // Decisions handed to the ActionHandler finish into a live engine (a
    // plugin call ends at its timeout at the latest).
    std::unique_lock<std::mutex> lock(inflight_mu_);
    inflight_cv_.wait(lock, [this] { return inflight_ == 0; });
  }
  {
    std::lock_guard<std::mutex> lock(throttle_mu_);
    parked_.clear();
  }
  std::lock_guard<std::mutex> lock(mu_);
  entries_.clear();  // closes every listener and pidfd
}

void Engine::SetPolicy(std::shared_ptr<const CompiledPolicy> policy) {
  auto b = std::make_shared<BoundPolicy>();
  b->policy = std::move(policy);
  if (default_slot_) {
    default_slot_->Set(std::move(b));
  } else {
    default_slot_ = std::make_shared<PolicySlot>(std::move(b));
  }
}

std::shared_ptr<const CompiledPolicy> Engine::policy() const {
  return default_slot_->Get()->policy;
}

absl::Status Engine::AddContainer(ContainerInfo info, UniqueFd listener,
                                  std::shared_ptr<PolicySlot> slot) {
  auto e = std::make_shared<Entry>();
  e->stats.CountInto(&totals_);
  e->info = std::move(info);
  e->listener = std::move(listener);
  if (!slot && binder_) slot = binder_(e->info);
  e->slot = slot ? std::move(slot) : default_slot_;
  e->registered_unix_ns = absl::ToUnixNanos(absl::Now());
  const ExeId exe = ExeOf(e->info.init_pid);
  e->runtime_exe_ok = exe.ok && !exe.in_root;
  e->runtime_exe_dev = exe.dev;
  e->runtime_exe_ino = exe.ino;
  if (!e->runtime_exe_ok) e->runtime_phase = false;
  // Rate limit: the flags, lowered (never raised) by the annotations, since
  // whoever starts the container writes them.
  const double rate = Stricter(opts_.container_rate, AnnotationNumber(e->info, kRateAnnotation));
  if (rate > 0) {
    double burst = opts_.container_burst > 0 ? opts_.container_burst : rate;
    burst = Stricter(burst, AnnotationNumber(e->info, kBurstAnnotation));
    e->limiter.Configure(rate, std::max(burst, 1.0), NowNs());
    const double default_burst =
        opts_.container_burst > 0 ? opts_.container_burst : std::max(opts_.container_rate, 1.0);
    if (rate != opts_.container_rate || e->limiter.burst() != default_burst) {  // annotations
      spdlog::info("container {}: rate limit {} notifications/s, burst {} ({})", e->info.id, rate,
                   e->limiter.burst(), RateLimitActionName(opts_.rate_limit_action));
    }
  }
  // SYNC_WAKE_UP (6.6+) wakes the supervisor on the task's CPU and back:
  // fewer cross-CPU wake-ups per round trip. Older kernels: EINVAL/ENOTTY.
  if (opts_.sync_wakeup && sync_wakeup_supported_) {
    absl::Status s = unotify_.SetFlags(e->listener.get(), SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
    if (!s.ok()) {
      sync_wakeup_supported_ = false;
      spdlog::info("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP unavailable, continuing without it: {}",
                   std::string(s.message()));
    }
  }
  // On 6.1 the listener hangs up only after the tasks are reaped; the init's
  // pidfd tells us at exit.
  e->pidfd.reset(PidfdOpen(e->info.init_pid));
  if (!e->pidfd) {
    spdlog::warn("container {}: pidfd_open({}) failed: {}; relying on listener hang-up", e->info.id,
                 e->info.init_pid, strerror(errno));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::FailedPreconditionError("engine stopped");
    e->key = next_key_++;
    entries_[e->key] = e;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: see the class comment
  ev.data.u64 = (e->key << 1) | kKindListener;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, e->listener.get(), &ev) != 0) {
    absl::Status s = ErrnoStatus(errno, "epoll_ctl add listener");
    std::lock_guard<std::mutex> lock(mu_);
    entries_.erase(e->key);
    return s;
  }
  for (DecisionObserver* o : observers_) o->OnContainerAdded(e->info);
  if (e->pidfd) {
    epoll_event pev{};
    pev.events = EPOLLIN;
    pev.data.u64 = (e->key << 1) | kKindPidfd;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, e->pidfd.get(), &pev) != 0) {
      spdlog::warn("container {}: cannot watch init pidfd: {}", e->info.id, strerror(errno));
    }
  }
  return absl::OkStatus();
}

int Engine::RemoveContainer(const std::string& id, const std::string& reason) {
  std::vector<std::shared_ptr<Entry>> hits;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, e] : entries_) {
      if (e->info.id == id) hits.push_back(e);
    }
  }
  for (const auto& e : hits) Remove(e, reason);
  return static_cast<int>(hits.size());
}

absl::StatusOr<bool> Engine::Quiet(const std::string& id) const {
  std::vector<std::shared_ptr<Entry>> hits;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, e] : entries_) {
      if (e->info.id == id) hits.push_back(e);
    }
  }
  if (hits.empty()) return absl::NotFoundError(absl::StrCat("container ", id, " not served"));
  for (const auto& e : hits) {
    // Everything begun by the first read was settled by the second; no
    // RECV began until the last, so in between (at the poll) nothing was
    // being received and nothing received was unanswered.
    const uint64_t begun = e->recv_begun.load();
    if (e->settled.load() != begun) return false;
    pollfd p{e->listener.get(), POLLIN, 0};
    if (poll(&p, 1, 0) != 0 && (p.revents & POLLIN)) return false;  // one waits to be received
    if (e->recv_begun.load() != begun) return false;
  }
  return true;
}

std::shared_ptr<Engine::Entry> Engine::Lookup(uint64_t key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second;
}

void Engine::Remove(const std::shared_ptr<Entry>& e, const std::string& reason) {
  if (e->removed.exchange(true)) return;
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, e->listener.get(), nullptr);
  if (e->pidfd) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, e->pidfd.get(), nullptr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.erase(e->key);
  }
  if (e->limiter.limited()) {
    {
      // A parked listener: drop its timer entry (and the reference it holds).
      std::lock_guard<std::mutex> lock(throttle_mu_);
      const int64_t until = e->limiter.parked_until_ns();
      if (until != 0) parked_.erase({until, e});
      e->stats.throttled_ns += e->limiter.Unpark(NowNs());
    }
    e->limiter.LogRemoved(e->info.id, e->stats.rate_limited.load(), limit_settings_);
  }
  // The fds close when the last worker holding `e` lets go.
  spdlog::info("container {} removed: {}", e->info.id, reason);
  for (DecisionObserver* o : observers_) o->OnContainerRemoved(e->info, reason);
}

void Engine::Worker() {
  const int slot = next_slot_.fetch_add(1);
  tls_busy = slot < busy_slots_ ? &busy_since_[slot] : nullptr;
  std::unique_lock<std::mutex> lead(lead_mu_, std::defer_lock);
  epoll_event ev;
  while (!stopping_) {
    if (!lead.owns_lock()) lead.lock();  // wait as a follower
    if (stopping_) return;
    int n = epoll_wait(epoll_.get(), &ev, 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("epoll_wait: {}", strerror(errno));
      return;
    }
    if (n == 0) continue;
    if (ev.data.u64 == kStopToken) return;
    if (ev.data.u64 == kTimerToken) {
      OnTimer();
      continue;
    }
    std::shared_ptr<Entry> e = Lookup(ev.data.u64 >> 1);
    if (!e) continue;
    if ((ev.data.u64 & 1) == kKindPidfd) {
      Remove(e, "init process exited");
      continue;
    }
    if (ev.events & EPOLLIN) {
      // Without a limit this one branch is all the rate limiter costs.
      if (e->limiter.limited()) {
        const int64_t now = NowNs();
        if (!e->limiter.Admit(now)) {
          if (opts_.rate_limit_action == RateLimitAction::kDelay) {
            Park(e, now);
            continue;
          }
          HandleListener(e, lead, /*over_limit=*/true);
          continue;
        }
      }
      HandleListener(e, lead);
    } else if (ev.events & (EPOLLHUP | EPOLLERR)) {
      Remove(e, "listener hung up: no task left in the filter");
    }
  }
}

void Engine::HandleListener(const std::shared_ptr<Entry>& e, std::unique_lock<std::mutex>& lead,
                            bool over_limit) {
  seccomp_notif n;
  e->recv_begun.fetch_add(1);
  absl::Status s = unotify_.Recv(e->listener.get(), &n);
  if (!s.ok()) {
    e->settled.fetch_add(1);
    int err = ErrnoOf(s);
    if (err == ENOENT || err == EINTR) {
      // The task died between readiness and RECV. A filter whose tasks are
      // all gone answers ENOENT forever: stop watching on hang-up instead of
      // spinning.
      pollfd p{e->listener.get(), POLLIN, 0};
      if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP)) {
        Remove(e, "listener hung up: no task left in the filter");
      }
      return;
    }
    e->stats.errors++;
    spdlog::error("container {}: {}", e->info.id, std::string(s.message()));
    Remove(e, absl::StrCat("NOTIF_RECV failed: ", s.message()));
    return;
  }
  if (over_limit) {
    DenyOverLimit(e, n);
    return;
  }
  Decide(e, n, lead);
}

// Delay mode: stop polling the listener (its tasks wait in the kernel) until
// the bucket holds a token again, or rate_limit_min_park_ns, whichever is
// later. EPOLLHUP/EPOLLERR are still reported for a parked fd, so a
// container that exits while parked is still removed.
void Engine::Park(const std::shared_ptr<Entry>& e, int64_t now) {
  const int64_t wait = e->limiter.ParkNs(limit_settings_);
  epoll_event ev{};
  ev.events = 0;
  ev.data.u64 = (e->key << 1) | kKindListener;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, e->listener.get(), &ev) != 0) {
    return;  // removed meanwhile (ENOENT): nothing to park
  }
  {
    std::lock_guard<std::mutex> lock(throttle_mu_);
    if (e->removed.load()) return;  // Remove ran (or runs) its erase: keep no reference
    e->limiter.Park(now, now + wait);
    parked_.emplace(now + wait, e);
    ArmTimerLocked();
  }
  NoteRateLimited(*e, now);
}

// Keeps the timerfd armed at or before the earliest resume time. A timer
// that fires early (its entry was removed) just re-arms.
void Engine::ArmTimerLocked() {
  if (parked_.empty()) return;
  const int64_t first = parked_.begin()->first;
  if (timer_armed_ns_ != 0 && timer_armed_ns_ <= first) return;
  itimerspec its{};
  its.it_value.tv_sec = first / 1'000'000'000;
  its.it_value.tv_nsec = first % 1'000'000'000;
  if (timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr) != 0) {
    spdlog::error("timerfd_settime: {}", strerror(errno));
    return;
  }
  timer_armed_ns_ = first;
}

// The timer fired: re-arm every listener whose park is over.
void Engine::OnTimer() {
  uint64_t expirations;
  (void)!read(timer_.get(), &expirations, sizeof(expirations));  // EAGAIN: spurious
  const int64_t now = NowNs();
  std::vector<std::shared_ptr<Entry>> due;
  {
    std::lock_guard<std::mutex> lock(throttle_mu_);
    timer_armed_ns_ = 0;  // one-shot: it fired
    while (!parked_.empty() && parked_.begin()->first <= now) {
      std::shared_ptr<Entry> e = parked_.begin()->second;
      parked_.erase(parked_.begin());
      e->stats.throttled_ns += e->limiter.Unpark(now);
      due.push_back(std::move(e));
    }
    ArmTimerLocked();
  }
  for (const auto& e : due) {
    if (e->removed.load()) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = (e->key << 1) | kKindListener;
    // ENOENT: Remove() took it out of the set meanwhile; `e` keeps the fd
    // open, so the number cannot have been reused.
    (void)epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, e->listener.get(), &ev);
  }
}

// Deny mode: answer at once, no policy, no memory reads.
void Engine::DenyOverLimit(const std::shared_ptr<Entry>& e, const seccomp_notif& n) {
  const int64_t t0 = NowNs();
  e->stats.notifications++;
  SyscallEvent ev = EventOf(e->info, n);
  seccomp_notif_resp resp{};
  resp.id = n.id;
  resp.error = -opts_.rate_limit_errno;
  DecisionRecord rec;
  rec.event = &ev;
  rec.rule = "rate-limit";
  rec.action = "deny";
  absl::Status sent = unotify_.Send(e->listener.get(), resp);
  if (sent.ok()) {
    rec.result = ErrnoName(opts_.rate_limit_errno);
    e->stats.denied++;
  } else {
    rec.result = "task-gone";
    e->stats.task_gone++;
  }
  rec.latency_ns = NowNs() - t0;
  Record(*e, rec);
  NoteRateLimited(*e, t0);
}

// Counts a rate limit hit and logs the first one of a container, then a
// summary at most every rate_limit_log_interval_ns.
void Engine::NoteRateLimited(Entry& e, int64_t now) {
  const uint64_t hits = ++e.stats.rate_limited;
  rate_limited_total_.fetch_add(1, std::memory_order_relaxed);
  e.limiter.LogHit(e.info.id, hits, now, limit_settings_);
}

bool Engine::IsRuntimeTask(const Entry& e, pid_t pid) {
  if (!e.runtime_exe_ok) return false;
  ExeId now = ExeOf(pid);
  return now.ok && now.dev == e.runtime_exe_dev && now.ino == e.runtime_exe_ino;
}

// The runtime's own pre-exec calls (runc init) pass when no rule names
// them. Only the init pid qualifies, and only until the init first traps
// under another name.
void Engine::NoteRuntimePhase(Entry& e, SyscallEvent& ev) {
  if (e.runtime_phase.load(std::memory_order_relaxed) && ev.pid == e.info.init_pid) {
    if (IsRuntimeTask(e, ev.pid)) {
      ev.runtime_phase = true;
    } else {
      e.runtime_phase.store(false, std::memory_order_relaxed);
    }
  }
}

// Sends the leader's reply and records the decision.
void Engine::SendAndRecord(Entry& e, const seccomp_notif_resp& resp, DecisionRecord& rec,
                           int64_t t0) {
  absl::Status sent = unotify_.Send(e.listener.get(), resp);
  if (!sent.ok()) {
    if (ErrnoOf(sent) == ENOENT) {
      e.stats.task_gone++;  // killed or interrupted while we decided: normal
      rec.result = "task-gone";
    } else {
      e.stats.errors++;
      spdlog::error("container {}: {}", e.info.id, std::string(sent.message()));
      rec.result = absl::StrCat("send-failed: ", ErrnoName(ErrnoOf(sent)));
    }
  }
  rec.latency_ns = NowNs() - t0;
  Record(e, rec);
}

void Engine::Decide(const std::shared_ptr<Entry>& e, const seccomp_notif& n,
                    std::unique_lock<std::mutex>& lead) {
  const int64_t t0 = NowNs();
  e->stats.notifications++;
  std::shared_ptr<const BoundPolicy> bound = e->slot->Get();
  ActionHandler* const handler = bound->handler != nullptr ? bound->handler : handler_;

  SyscallEvent ev = EventOf(e->info, n);
  ev.received_ns = t0;
  // Every resolution in the task's root for this call (decode, a redirect
  // target, the emulated open) shares one open of /proc/PID/root.
  CallRoot root(ev.pid);
  CallRootScope root_scope(&root);

  // x32 (AUDIT_ARCH_X86_64 with __X32_SYSCALL_BIT): a third ABI whose
  // numbers no rule names; refused (ENOSYS, as a kernel without x32 says)
  // rather than decided by rules written for x86_64 (issue 12 item 7).
  if (ev.arch == AUDIT_ARCH_X86_64 && (ev.nr & kX32SyscallBit) != 0) {
    DenyWith(e, ev, t0, "x32-refused", ENOSYS);
    return;
  }

  NoteRuntimePhase(*e, ev);

  const CompiledPolicy* policy = bound->policy.get();
  uint32_t needs = policy != nullptr ? policy->Needs(ev.syscall) : kNeedNothing;
  if (decision_log_ != nullptr) needs |= kNeedPath | kNeedSockaddr;
  bool read_memory = false;
  if (needs != kNeedNothing) read_memory = DecodeEvent(ev, needs, opts_.max_write_capture);

  // A path a rule needs that could not be resolved in the task's root
  // (a magic link out of it, a dirfd that is not a directory there, ...)
  // would match no path rule: fail closed instead (issue 12 item 4).
  // The runtime's own pre-exec calls (its exec fifo is outside the root)
  // are exempt.
  if (!ev.runtime_phase && policy != nullptr && (policy->Needs(ev.syscall) & kNeedPath) &&
      PathUnresolved(ev)) {
    DenyWith(e, ev, t0, "unresolved-path", EACCES);
    return;
  }

  // No policy (unknown, or it failed to load): fail closed.
  CompiledPolicy::Verdict v{&policy_error_action_, "policy-error", -1};
  if (policy != nullptr) v = policy->Evaluate(ev);
  const v1::Action& action = *v.action;

  DecisionRecord rec;
  rec.event = &ev;
  rec.policy_name = bound->name;  // `bound` outlives the record, as for `rule`
  rec.policy_version = bound->version;
  rec.rule = v.rule;  // in the policy, which `bound` keeps
  rec.action = ActionKindName(action);
  bool force_log = false;

  // What was read from the task is only trustworthy if the task was alive
  // (and so its pid not recycled) across the read.
  if (read_memory) {
    absl::Status valid = unotify_.IdValid(e->listener.get(), n.id);
    if (!valid.ok()) {
      e->stats.task_gone++;
      rec.result = "task-gone";
      rec.latency_ns = NowNs() - t0;
      Record(*e, rec);
      return;
    }
  }

  seccomp_notif_resp resp{};
  resp.id = n.id;
  std::optional<LocalReply> local = LocalReplyFor(action);
  // A plugin's cached plain answer: sent like a local rule's, by the
  // leader (handing off leadership costs two context switches).
  ActionHandler::QuickReply quick;
  if (!local && handler != nullptr && handler->TryQuickReply(ev, action, &quick)) {
    local = std::move(quick.reply);
    rec.backend = quick.backend;
    rec.action.assign(quick.action.data(), quick.action.size());
  }
  if (local) {
    resp = local->Resp(n.id);
    rec.result = std::move(local->result);
    force_log = action.kind_case() == v1::Action::kLog;
    CountEffect(e->stats, local->effect);
  } else if (handler != nullptr) {
    auto p = std::make_shared<Pending>();
    p->entry = e;
    p->bound = bound;
    p->ev = std::move(ev);
    p->rec = std::move(rec);
    p->rec.event = &p->ev;
    p->id = n.id;
    p->t0 = t0;
    {
      std::lock_guard<std::mutex> lock(inflight_mu_);
      inflight_++;
    }
    p->notif = n;
    p->action = &action;
    p->rule_index = v.rule_index;
    p->handler = handler;
    p->root = std::move(root);
    // May take long: let a follower lead meanwhile.
    if (lead.owns_lock()) lead.unlock();
    RunInLane(std::move(p));
    return;
  } else {
    spdlog::warn("container {}: action {} is not available in this build; answering {}", e->info.id,
                 rec.action, ErrnoName(opts_.fallback_errno));
    resp.error = -opts_.fallback_errno;
    rec.result = ErrnoName(opts_.fallback_errno);
    e->stats.denied++;
  }
  SendAndRecord(*e, resp, rec, t0);
  if (decision_log_ == nullptr && force_log) {
    spdlog::info("log: container {} pid {} {} {} rule {}", e->info.id, ev.pid, ev.syscall,
                 ev.path.value_or(""), std::string(rec.rule));
  }
}

void Engine::RunInLane(std::shared_ptr<Pending> p) {
  Entry& e = *p->entry;
  std::vector<std::shared_ptr<Pending>> superseded;
  {
    std::lock_guard<std::mutex> lock(e.lane_mu);
    if (e.lane_busy) {
      // A task waits on one notification at a time: a queued call of the
      // same thread is one the kernel already dropped (a signal interrupted
      // it and the thread restarted the call, or the thread died and its
      // tid was reused). Running it would only find that out, late, while
      // the live call waits behind it; under a signal storm that queue grew
      // without bound and every restarted call went stale in it.
      for (auto it = e.lane.begin(); it != e.lane.end();) {
        if ((*it)->notif.pid == p->notif.pid) {
          superseded.push_back(std::move(*it));
          it = e.lane.erase(it);
        } else {
          ++it;
        }
      }
      e.lane.push_back(std::move(p));  // the worker in the lane runs it next
    } else {
      e.lane_busy = true;
    }
  }
  for (const auto& old : superseded) FinishGone(old);
  if (!p) return;  // queued
  bool queued = false;
  for (;;) {
    // A call that waited in the queue may have been interrupted meanwhile.
    if (queued && !unotify_.IdValid(e.listener.get(), p->id).ok()) {
      FinishGone(p);
    } else {
      CallHandler(p);
    }
    std::lock_guard<std::mutex> lock(e.lane_mu);
    if (e.lane.empty()) {
      e.lane_busy = false;
      return;
    }
    p = std::move(e.lane.front());
    e.lane.pop_front();
    queued = true;
  }
}

// A call that ended before its handler ran: no side effect, no reply.
void Engine::FinishGone(const std::shared_ptr<Pending>& p) {
  ActionHandler::Outcome out;
  out.task_gone = true;
  out.result = "task-gone";
  Finish(p, std::move(out));
}

void Engine::CallHandler(const std::shared_ptr<Pending>& p) {
  if (tls_busy != nullptr) tls_busy->store(NowNs(), std::memory_order_relaxed);
  CallRootScope root_scope(&p->root);
  p->handler->Handle(
      p->entry->listener.get(), p->notif, p->ev, *p->action, p->rule_index, *p->bound->policy,
      [this, p](absl::StatusOr<ActionHandler::Outcome> out) { Finish(p, std::move(out)); });
  if (tls_busy != nullptr) tls_busy->store(0, std::memory_order_relaxed);
}

int Engine::StuckWorkers() const {
  const int64_t now = NowNs();
  int stuck = 0;
  for (int i = 0; i < busy_slots_; ++i) {
    const int64_t since = busy_since_[i].load(std::memory_order_relaxed);
    if (since != 0 && now - since > opts_.stuck_after_ns) ++stuck;
  }
  return stuck;
}

void Engine::DenyWith(const std::shared_ptr<Entry>& e, SyscallEvent& ev, int64_t t0,
                      const char* rule, int err) {
  seccomp_notif_resp resp{};
  resp.id = ev.id;
  resp.error = -err;
  DecisionRecord rec;
  rec.event = &ev;
  rec.rule = rule;
  rec.action = "deny";
  absl::Status sent = unotify_.Send(e->listener.get(), resp);
  rec.result = sent.ok() ? ErrnoName(err) : "task-gone";
  (sent.ok() ? e->stats.denied : e->stats.task_gone)++;
  rec.latency_ns = NowNs() - t0;
  Record(*e, rec);
}

void Engine::Finish(const std::shared_ptr<Pending>& p, absl::StatusOr<ActionHandler::Outcome> out) {
  Entry& e = *p->entry;
  DecisionRecord& rec = p->rec;
  if (out.ok()) {
    rec.result = out->result;
    // `out` lives until Record below is done.
    rec.backend = out->backend;
    if (!out->rule.empty()) rec.rule = out->rule;
    if (!out->action.empty()) rec.action = out->action;
    if (out->task_gone) {
      e.stats.task_gone++;
    } else {
      CountEffect(e.stats, out->effect);
    }
  } else {
    spdlog::warn("container {}: {} for {} failed, answering {}: {}", e.info.id, rec.action,
                 p->ev.syscall, ErrnoName(opts_.fallback_errno),
                 std::string(out.status().message()));
    seccomp_notif_resp resp{};
    resp.id = p->id;
    resp.error = -opts_.fallback_errno;
    absl::Status sent = unotify_.Send(e.listener.get(), resp);
    rec.result = sent.ok() ? ErrnoName(opts_.fallback_errno) : "task-gone";
    (sent.ok() ? e.stats.denied : e.stats.task_gone)++;
  }
  rec.latency_ns = NowNs() - p->t0;
  Record(e, rec);
  std::lock_guard<std::mutex> lock(inflight_mu_);
  if (--inflight_ == 0) inflight_cv_.notify_all();
}

void Engine::Record(Entry& e, const DecisionRecord& rec) {
  e.settled.fetch_add(1);
  if (decision_log_ != nullptr) decision_log_->Write(rec);
  for (DecisionObserver* o : observers_) o->OnDecision(rec);
}

std::vector<ContainerSnapshot> Engine::Containers() const {
  std::vector<ContainerSnapshot> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, e] : entries_) {
    const ContainerStats& s = e->stats;
    out.push_back(ContainerSnapshot{e->info, s.notifications.load(), s.allowed.load(),
                                    s.denied.load(), s.returned.load(), s.substituted.load(),
                                    s.task_gone.load(), s.errors.load(), e->registered_unix_ns,
                                    s.rate_limited.load(), s.throttled_ns.load(), e->limiter.rate(),
                                    e->limiter.burst(), e->slot->Get()->Label()});
  }
  return out;
}

EngineTotals Engine::Totals() const {
  const auto& t = totals_;
  return EngineTotals{t.notifications.load(), t.allowed.load(),      t.denied.load(),
                      t.returned.load(),      t.substituted.load(),  t.task_gone.load(),
                      t.errors.load(),        t.rate_limited.load(), t.throttled_ns.load()};
}

size_t Engine::container_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace seccomp_agent
