#include "agent/plugin/dispatcher.h"

#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/seccompagent/v1/plugin.grpc.pb.h"

namespace seccomp_agent {
namespace plugin {

using Clock = std::chrono::steady_clock;
namespace health = ::grpc::health::v1;

const char* ErrorKindName(ErrorKind k) {
  switch (k) {
    case ErrorKind::kNone:
      return "none";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kUnavailable:
      return "unavailable";
    case ErrorKind::kInvalid:
      return "invalid";
    case ErrorKind::kOverloaded:
      return "overloaded";
    case ErrorKind::kNotServing:
      return "not_serving";
    case ErrorKind::kRpcError:
      return "rpc_error";
    case ErrorKind::kUnknownPlugin:
      return "unknown_plugin";
    case ErrorKind::kShutdown:
      return "shutdown";
  }
  return "?";
}

v1::PluginConfig WithDefaults(const v1::PluginConfig& in) {
  v1::PluginConfig pc = in;
  if (pc.timeout_ms() == 0) pc.set_timeout_ms(100);
  if (pc.max_in_flight() == 0) pc.set_max_in_flight(64);
  if (pc.on_error() == v1::PluginConfig::ON_ERROR_UNSPECIFIED) pc.set_on_error(v1::PluginConfig::DENY);
  if (pc.error_errno() == 0) pc.set_error_errno(1);  // EPERM
  return pc;
}

namespace {

constexpr char kServiceName[] = "seccompagent.v1.PolicyPlugin";

// One thread running deadline callbacks. A callback gets `shutdown` true
// when it runs early because the queue is being stopped.
class TimerQueue {
 public:
  using Fn = std::function<void(bool shutdown)>;
  TimerQueue() : thread_([this] { Run(); }) {}
  ~TimerQueue() { Stop(); }

  uint64_t Schedule(Clock::time_point when, Fn fn) {
    std::lock_guard<std::mutex> l(mu_);
    const uint64_t id = ++next_id_;
    auto it = by_time_.emplace(when, id);
    fns_.emplace(id, Item{std::move(fn), it});
    if (it == by_time_.begin()) cv_.notify_one();
    return id;
  }

  // True when the callback had not started (it never will).
  bool Cancel(uint64_t id) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = fns_.find(id);
    if (it == fns_.end()) return false;
    by_time_.erase(it->second.pos);
    fns_.erase(it);
    return true;
  }

  // Runs every pending callback now with shutdown=true, then stops.
  void Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  struct Item {
    Fn fn;
    std::multimap<Clock::time_point, uint64_t>::iterator pos;
  };

  void Run() {
    // Deadlines must fire on time even on a busy machine: best effort
    // (needs CAP_SYS_NICE, which the agent has as root; ignored otherwise).
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), -10);
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (stopping_) {
        // Fire whatever is left, as shutdown.
        while (!fns_.empty()) {
          auto it = fns_.begin();
          Fn fn = std::move(it->second.fn);
          by_time_.erase(it->second.pos);
          fns_.erase(it);
          l.unlock();
          fn(true);
          l.lock();
        }
        return;
      }
      if (by_time_.empty()) {
        cv_.wait(l);
        continue;
      }
      auto first = by_time_.begin();
      if (first->first > Clock::now()) {
        const Clock::time_point when = first->first;  // a copy: Cancel() may free the node
        cv_.wait_until(l, when);
        continue;
      }
      auto it = fns_.find(first->second);
      Fn fn = std::move(it->second.fn);
      by_time_.erase(first);
      fns_.erase(it);
      l.unlock();
      fn(false);
      l.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  uint64_t next_id_ = 0;
  std::multimap<Clock::time_point, uint64_t> by_time_;
  std::unordered_map<uint64_t, Item> fns_;
  std::thread thread_;  // last: starts after the members above exist
};

// Bounded LRU of validated decisions with a per-entry expiry.
class DecisionCache {
 public:
  explicit DecisionCache(size_t capacity) : capacity_(capacity) {}

  // Shares the stored decision (no proto copy on the hit path).
  bool Get(const std::string& key, Clock::time_point now, std::shared_ptr<const v1::Decision>* out) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return false;
    if (it->second->expiry <= now) {
      lru_.erase(it->second);
      map_.erase(it);
      return false;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    *out = it->second->decision;
    return true;
  }

  void Put(const std::string& key, const v1::Decision& d, Clock::time_point expiry) {
    if (capacity_ == 0) return;
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
      it->second->decision = std::make_shared<const v1::Decision>(d);
      it->second->expiry = expiry;
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    while (map_.size() >= capacity_) {
      map_.erase(lru_.back().key);
      lru_.pop_back();
    }
    lru_.push_front(Entry{key, std::make_shared<const v1::Decision>(d), expiry});
    map_.emplace(key, lru_.begin());
  }

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const v1::Decision> decision;
    Clock::time_point expiry;
  };
  const size_t capacity_;
  std::mutex mu_;
  std::list<Entry> lru_;
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> map_;
};

enum Health : int { kHealthUnknown = 0, kHealthServing = 1, kHealthNotServing = 2 };

// Workaround for grpc++ 1.51: callback RPCs of every channel and callback
// server share one process-wide "callback alternative" completion queue,
// reference-counted, with its own polling threads. When the count drops to
// zero (the last dispatcher/server is destroyed) and a new user appears
// while those threads wind down, grpc aborts in grpc_cq_internal_unref
// ("assertion failed: prior > 0"); seen in tests that create and destroy
// dispatchers. A channel that made one callback call holds a reference
// until it is destroyed, so one such channel is kept for the process.
std::shared_ptr<grpc::Channel>* g_pinned_channel = nullptr;  // never freed

void PinCallbackCompletionQueue() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_pinned_channel = new std::shared_ptr<grpc::Channel>(grpc::CreateChannel(
        "unix:///nonexistent/seccomp-agent-grpc-pin", grpc::InsecureChannelCredentials()));
    auto stub = health::Health::NewStub(*g_pinned_channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    health::HealthCheckRequest req;
    health::HealthCheckResponse resp;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    stub->async()->Check(&ctx, &req, &resp, [&](grpc::Status) {
      std::lock_guard<std::mutex> l(mu);
      done = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done; });
  });
}

}  // namespace

class StreamReactor;

struct PluginState {
  v1::PluginConfig cfg;  // with defaults
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::PolicyPlugin::Stub> stub;
  std::unique_ptr<health::Health::Stub> health_stub;
  std::atomic<int> health{kHealthUnknown};
  std::atomic<int64_t> in_flight{0};

  // Health checking (health thread + Check callbacks).
  std::atomic<bool> health_check_running{false};
  std::atomic<bool> health_use_overall{false};  // server knows no per-service status
  Clock::time_point next_health_check{};        // under health_mu_
  Clock::time_point last_health_check{};        // under health_mu_

  std::mutex stream_mu;
  std::shared_ptr<StreamReactor> stream;  // current stream, may be null

  mutable std::mutex stats_mu;
  PluginStats stats;
};

// One decision in flight.
struct PendingCall {
  PluginState* plugin = nullptr;
  PluginDispatcher::Done done;
  Clock::time_point start;
  std::atomic<bool> finished{false};
  std::atomic<uint64_t> timer_id{0};
  // What validation needs of the event (the event itself is gone).
  std::string syscall;
  int nr = -1;
  uint32_t arch = 0;
  uint64_t args[6] = {0, 0, 0, 0, 0, 0};
  std::string exact_key, sc_key;
  // Unary.
  grpc::ClientContext ctx;
  v1::DecideRequest req;
  v1::DecideResponse resp;
  // Stream.
  // Set by StreamReactor::Send, read by the timer: guarded by stream_mu.
  std::mutex stream_mu;
  uint64_t request_id = 0;
  std::weak_ptr<StreamReactor> stream;
};

class PluginDispatcher::Impl {
 public:
  Impl(Options opts) : opts_(std::move(opts)), cache_(opts_.cache_capacity) {}
  ~Impl();

  absl::Status AddPlugin(const v1::PluginConfig& pc);
  void StartHealth() {
    health_thread_ = std::thread([this] { HealthLoop(); });
  }

  void Decide(const std::string& name, const SyscallEvent& ev, Done done);
  // A cache hit for plugin `name` (counted as a call, a hit and a decision),
  // or false (nothing counted; Decide counts the call and the miss).
  bool DecideCached(const std::string& name, const SyscallEvent& ev, PluginResult* out,
                    const std::function<bool(const PluginResult&)>& accept);
  std::vector<PluginStats> Stats() const;
  absl::StatusOr<PluginStats> StatsFor(const std::string& name) const;

  // Used by StreamReactor.
  void CompleteWithDecision(const std::shared_ptr<PendingCall>& call, const v1::Decision* d,
                            const grpc::Status& status);
  bool Finish(const std::shared_ptr<PendingCall>& call, PluginResult r);
  bool CacheHit(PluginState* p, const SyscallEvent& ev, Clock::time_point start, PluginResult* out,
                const std::function<bool(const PluginResult&)>& accept = nullptr);
  PluginResult Error(const PluginState& p, ErrorKind kind, absl::Status s) const;
  void KickHealth(PluginState* p);
  void StreamStarted() { outstanding_.fetch_add(1); }
  void StreamEnded() { Release(); }
  void CountLateResponse(PluginState* p) {
    std::lock_guard<std::mutex> l(p->stats_mu);
    ++p->stats.late_or_unknown_responses;
  }
  const Options& opts() const { return opts_; }
  static void NoteLateness(PluginState* p, Clock::time_point due) {
    const uint64_t us = static_cast<uint64_t>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - due).count()));
    std::lock_guard<std::mutex> l(p->stats_mu);
    p->stats.timer_lateness_max_us = std::max(p->stats.timer_lateness_max_us, us);
  }
  TimerQueue& timers() { return *timers_; }

 private:
  void SendUnary(const std::shared_ptr<PendingCall>& call);
  void SendStream(const std::shared_ptr<PendingCall>& call);
  void HealthLoop();
  void StartHealthCheck(PluginState* p, bool overall);
  void Release() {
    if (outstanding_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> l(drain_mu_);
      drain_cv_.notify_all();
    }
  }

  Options opts_;
  DecisionCache cache_;
  std::unique_ptr<TimerQueue> timers_ = std::make_unique<TimerQueue>();
  std::map<std::string, std::unique_ptr<PluginState>> plugins_;  // fixed after Create
  std::atomic<bool> shutting_down_{false};
  // gRPC operations whose callbacks have not run yet (unary calls, health
  // checks, streams): the destructor waits for 0.
  std::atomic<int64_t> outstanding_{0};
  std::mutex drain_mu_;
  std::condition_variable drain_cv_;

  std::mutex health_mu_;
  std::condition_variable health_cv_;
  bool health_stop_ = false;
  std::thread health_thread_;
};

namespace {

ErrorKind KindOfStatus(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return ErrorKind::kTimeout;
    case grpc::StatusCode::UNAVAILABLE:
      return ErrorKind::kUnavailable;
    case grpc::StatusCode::INTERNAL:
      // The client library failed to parse the plugin's bytes.
      if (absl::StrContains(s.error_message(), "parse")) return ErrorKind::kInvalid;
      return ErrorKind::kRpcError;
    default:
      return ErrorKind::kRpcError;
  }
}

// gRPC deadlines take system_clock time points.
std::chrono::system_clock::time_point ToSystem(Clock::time_point t) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(t - Clock::now());
}

absl::Status ToAbsl(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// The Action the engine executes for a decisive, validated decision.
void FillResult(const v1::Decision& d, PluginResult* r) {
  r->kind = PluginResult::Kind::kAction;
  r->reason = d.reason().substr(0, kMaxReasonBytes);
  switch (d.kind_case()) {
    case v1::Decision::kNoOpinion:
      r->kind = PluginResult::Kind::kNoOpinion;
      break;
    case v1::Decision::kAllow:
      r->action.mutable_allow();
      break;
    case v1::Decision::kDeny:
      *r->action.mutable_deny() = d.deny();
      break;
    case v1::Decision::kReturn:
      *r->action.mutable_return_() = d.return_();
      break;
    case v1::Decision::kRedirectOpen:
      *r->action.mutable_redirect_open() = d.redirect_open();
      break;
    case v1::Decision::kRewriteBind:
      *r->action.mutable_rewrite_bind() = d.rewrite_bind();
      break;
    case v1::Decision::kReplaceWrite:
      *r->action.mutable_replace_write() = d.replace_write();
      break;
    case v1::Decision::kInject:
      r->kind = PluginResult::Kind::kInject;
      r->inject = d.inject();
      break;
    case v1::Decision::KIND_NOT_SET:
      break;  // validated away
  }
}

ValidationContext ContextOf(const PendingCall& c, const std::vector<std::string>* roots) {
  ValidationContext v;
  v.nr = c.nr;
  v.arch = c.arch;
  v.syscall = c.syscall;
  for (int i = 0; i < 6; ++i) v.args[i] = c.args[i];
  v.redirect_roots = roots;
  return v;
}

}  // namespace

// The one DecideStream of a plugin. Owned by shared_ptrs: the plugin's
// current-stream slot, pending calls (weak), and itself until OnDone.
//
// Lifetime rule: a hold is taken before StartCall and dropped when the read
// loop ends (OnReadDone(false)), under mu_, together with closing_ = true.
// Send() writes only under mu_ with !closing_, so every StartWrite happens
// while the hold is in place, i.e. strictly before OnDone.
class StreamReactor : public grpc::ClientBidiReactor<v1::DecideStreamRequest, v1::DecideStreamResponse>,
                      public std::enable_shared_from_this<StreamReactor> {
 public:
  StreamReactor(PluginDispatcher::Impl* impl, PluginState* p) : impl_(impl), p_(p) {}

  // Binds the reactor to a new RPC (nothing is sent yet: Send() may queue
  // writes from here on), then Start() begins it. Split so the plugin's
  // stream slot can be filled under its lock and the call started outside.
  void Bind() {
    self_ = shared_from_this();
    impl_->StreamStarted();
    {
      std::lock_guard<std::mutex> l(p_->stats_mu);
      ++p_->stats.streams_opened;
    }
    p_->stub->async()->DecideStream(&ctx_, this);
    AddHold();
    StartRead(&resp_);
  }
  void Start() { StartCall(); }

  // Queues `call`; false when the stream is closing (the caller fails it).
  bool Send(const std::shared_ptr<PendingCall>& call, const v1::Notification& n) {
    std::lock_guard<std::recursive_mutex> l(mu_);
    if (closing_) return false;
    {
      std::lock_guard<std::mutex> cl(call->stream_mu);
      call->request_id = ++next_id_;
      call->stream = weak_from_this();
    }
    pending_.emplace(call->request_id, call);
    v1::DecideStreamRequest& req = queue_.emplace_back();
    req.set_request_id(call->request_id);
    *req.mutable_notification() = n;
    if (!writing_) {
      writing_ = true;
      StartWrite(&queue_.front());
    }
    return true;
  }

  // The timer gave up on `id`.
  void OnTimeout(uint64_t id) {
    bool reset = false;
    {
      std::lock_guard<std::recursive_mutex> l(mu_);
      pending_.erase(id);
      reset = ++consecutive_timeouts_ >= impl_->opts().stream_timeouts_before_reset && !closing_;
    }
    if (reset) ctx_.TryCancel();  // wedged: the read loop ends, the next call opens a new stream
  }

  void Cancel() { ctx_.TryCancel(); }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> l(mu_);
    queue_.pop_front();
    if (!ok || closing_ || queue_.empty()) {
      // !ok: the stream is broken; the read loop ends and fails the calls.
      if (!ok) queue_.clear();
      writing_ = false;
      return;
    }
    StartWrite(&queue_.front());
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      std::shared_ptr<PendingCall> call;
      v1::Decision d;
      const bool has = resp_.has_decision();
      {
        std::lock_guard<std::recursive_mutex> l(mu_);
        auto it = pending_.find(resp_.request_id());
        if (it != pending_.end()) {
          call = std::move(it->second);
          pending_.erase(it);
          consecutive_timeouts_ = 0;
        }
        if (has) d = std::move(*resp_.mutable_decision());
      }
      if (call != nullptr) {
        impl_->CompleteWithDecision(call, has ? &d : nullptr, grpc::Status::OK);
      } else {
        impl_->CountLateResponse(p_);
      }
      resp_.Clear();
      StartRead(&resp_);
      return;
    }
    // The stream is over: fail everything pending on it at once.
    std::unordered_map<uint64_t, std::shared_ptr<PendingCall>> failed;
    {
      std::lock_guard<std::recursive_mutex> l(mu_);
      closing_ = true;
      failed.swap(pending_);
    }
    {
      std::lock_guard<std::mutex> l(p_->stream_mu);
      if (p_->stream.get() == this) p_->stream.reset();
    }
    for (auto& kv : failed) {
      impl_->Finish(kv.second, impl_->Error(*p_, ErrorKind::kUnavailable,
                                            absl::UnavailableError("plugin stream broken")));
    }
    if (!failed.empty()) impl_->KickHealth(p_);
    // A read can fail while the RPC is still open (an answer that does not
    // parse): end it, or OnDone would wait for the plugin to finish.
    ctx_.TryCancel();
    RemoveHold();
  }

  void OnDone(const grpc::Status& s) override {
    auto keep = std::move(self_);
    impl_->StreamEnded();
    // `keep` may be the last reference: nothing after this line.
  }

 private:
  PluginDispatcher::Impl* const impl_;
  PluginState* const p_;
  grpc::ClientContext ctx_;
  v1::DecideStreamResponse resp_;  // read loop only
  std::shared_ptr<StreamReactor> self_;

  // Recursive as a safety net: gRPC runs reactions on its own threads, but
  // should one ever run inline inside StartWrite, it must not deadlock.
  std::recursive_mutex mu_;
  bool closing_ = false;
  bool writing_ = false;
  int consecutive_timeouts_ = 0;
  uint64_t next_id_ = 0;
  std::deque<v1::DecideStreamRequest> queue_;  // front is being written
  std::unordered_map<uint64_t, std::shared_ptr<PendingCall>> pending_;
};

// --- Impl -------------------------------------------------------------------

absl::Status PluginDispatcher::Impl::AddPlugin(const v1::PluginConfig& in) {
  if (in.name().empty()) return absl::InvalidArgumentError("plugin with an empty name");
  if (plugins_.count(in.name()) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("duplicate plugin name \"", in.name(), "\""));
  }
  if (in.address().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("plugin \"", in.name(), "\" has no address"));
  }
  auto p = std::make_unique<PluginState>();
  p->cfg = WithDefaults(in);
  p->stats.name = in.name();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(opts_.initial_backoff)));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(opts_.initial_backoff)));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(opts_.max_backoff)));
  // Each plugin (and each dispatcher) has its own connection and backoff.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A decision is not retried behind our back: the deadline is short and
  // a retry of a plugin with side effects (audit logs) would double them.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  p->channel = grpc::CreateCustomChannel(p->cfg.address(), grpc::InsecureChannelCredentials(), args);
  if (p->channel == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("plugin \"", in.name(), "\": bad address \"", in.address(), "\""));
  }
  p->stub = v1::PolicyPlugin::NewStub(p->channel);
  p->health_stub = health::Health::NewStub(p->channel);
  plugins_.emplace(in.name(), std::move(p));
  return absl::OkStatus();
}

PluginDispatcher::Impl::~Impl() {
  shutting_down_.store(true);
  {
    std::lock_guard<std::mutex> l(health_mu_);
    health_stop_ = true;
  }
  health_cv_.notify_all();
  if (health_thread_.joinable()) health_thread_.join();
  // Every pending call has a timer: firing them all delivers kShutdown and
  // cancels the unary RPCs.
  timers_->Stop();
  for (auto& kv : plugins_) {
    std::shared_ptr<StreamReactor> s;
    {
      std::lock_guard<std::mutex> l(kv.second->stream_mu);
      s = kv.second->stream;
    }
    if (s) s->Cancel();
  }
  std::unique_lock<std::mutex> l(drain_mu_);
  drain_cv_.wait(l, [this] { return outstanding_.load() == 0; });
}

PluginResult PluginDispatcher::Impl::Error(const PluginState& p, ErrorKind kind, absl::Status s) const {
  PluginResult r;
  r.kind = PluginResult::Kind::kError;
  r.plugin = p.cfg.name();
  r.error_kind = kind;
  r.error = std::move(s);
  r.on_error = p.cfg.on_error();
  r.error_errno = p.cfg.error_errno();
  return r;
}

bool PluginDispatcher::Impl::Finish(const std::shared_ptr<PendingCall>& call, PluginResult r) {
  if (call->finished.exchange(true)) return false;
  if (uint64_t t = call->timer_id.load(); t != 0) timers_->Cancel(t);
  PluginState* p = call->plugin;
  p->in_flight.fetch_sub(1);
  r.plugin = p->cfg.name();
  r.on_error = p->cfg.on_error();
  r.error_errno = p->cfg.error_errno();
  r.latency = absl::FromChrono(Clock::now() - call->start);
  const int64_t us = absl::ToInt64Microseconds(r.latency);
  {
    std::lock_guard<std::mutex> l(p->stats_mu);
    PluginStats& st = p->stats;
    switch (r.kind) {
      case PluginResult::Kind::kAction:
      case PluginResult::Kind::kInject:
        ++st.decisions;
        break;
      case PluginResult::Kind::kNoOpinion:
        ++st.no_opinion;
        break;
      case PluginResult::Kind::kError:
        ++st.errors[static_cast<int>(r.error_kind)];
        break;
    }
    size_t b = 0;
    while (b + 1 < kLatencyBucketsUs.size() && us > kLatencyBucketsUs[b]) ++b;
    ++st.latency_buckets[b];
    st.latency_sum_us += static_cast<uint64_t>(std::max<int64_t>(us, 0));
  }
  if (r.kind == PluginResult::Kind::kError && r.error_kind == ErrorKind::kUnavailable) KickHealth(p);
  Done done = std::move(call->done);
  done(std::move(r));
  return true;
}

void PluginDispatcher::Impl::CompleteWithDecision(const std::shared_ptr<PendingCall>& call,
                                                  const v1::Decision* d, const grpc::Status& status) {
  PluginState& p = *call->plugin;
  if (!status.ok()) {
    Finish(call, Error(p, KindOfStatus(status), ToAbsl(status)));
    return;
  }
  if (d == nullptr) {
    Finish(call, Error(p, ErrorKind::kInvalid, absl::InvalidArgumentError("response has no decision")));
    return;
  }
  const ValidationContext vctx = ContextOf(*call, &opts_.redirect_roots);
  if (absl::Status v = ValidateDecision(*d, vctx); !v.ok()) {
    Finish(call, Error(p, ErrorKind::kInvalid, std::move(v)));
    return;
  }
  const v1::CacheHint& hint = d->cache();
  if (!d->has_no_opinion() && hint.scope() != v1::CacheHint::SCOPE_UNSPECIFIED && hint.ttl_ms() > 0) {
    const absl::Duration ttl = std::min(absl::Milliseconds(hint.ttl_ms()), opts_.max_cache_ttl);
    const Clock::time_point expiry = Clock::now() + absl::ToChronoNanoseconds(ttl);
    v1::Decision stored = *d;
    stored.clear_cache();
    cache_.Put(hint.scope() == v1::CacheHint::SCOPE_EXACT_ARGS ? call->exact_key : call->sc_key, stored,
               expiry);
  }
  PluginResult r;
  FillResult(*d, &r);
  Finish(call, std::move(r));
}

// Cache: syscall+container scope first, then exact args. A hit is
// validated again for this syscall (a cached write return may not fit). A
// hit is complete here: no PendingCall (nor its grpc::ClientContext), no
// timer, no in_flight; it is counted as a call, a hit and a decision.
bool PluginDispatcher::Impl::CacheHit(PluginState* p, const SyscallEvent& ev, Clock::time_point start,
                                      PluginResult* out,
                                      const std::function<bool(const PluginResult&)>& accept) {
  const std::string& name = p->cfg.name();
  std::shared_ptr<const v1::Decision> cached;
  const Clock::time_point now = Clock::now();
  const ValidationContext vctx = ContextFor(ev, &opts_.redirect_roots);
  if (!((cache_.Get(SyscallContainerKey(name, ev), now, &cached) && ValidateDecision(*cached, vctx).ok()) ||
        (cache_.Get(ExactArgsKey(name, ev), now, &cached) && ValidateDecision(*cached, vctx).ok()))) {
    return false;
  }
  PluginResult r;
  FillResult(*cached, &r);
  r.from_cache = true;
  if (accept && !accept(r)) return false;  // not counted: the caller goes on with Decide
  r.plugin = name;
  r.on_error = p->cfg.on_error();
  r.error_errno = p->cfg.error_errno();
  r.latency = absl::FromChrono(Clock::now() - start);
  const int64_t us = absl::ToInt64Microseconds(r.latency);
  {
    std::lock_guard<std::mutex> l(p->stats_mu);
    PluginStats& st = p->stats;
    ++st.calls;
    ++st.cache_hits;
    if (r.kind == PluginResult::Kind::kNoOpinion) {
      ++st.no_opinion;
    } else {
      ++st.decisions;
    }
    size_t b = 0;
    while (b + 1 < kLatencyBucketsUs.size() && us > kLatencyBucketsUs[b]) ++b;
    ++st.latency_buckets[b];
    st.latency_sum_us += static_cast<uint64_t>(std::max<int64_t>(us, 0));
  }
  *out = std::move(r);
  return true;
}

bool PluginDispatcher::Impl::DecideCached(const std::string& name, const SyscallEvent& ev,
                                          PluginResult* out,
                                          const std::function<bool(const PluginResult&)>& accept) {
  if (shutting_down_.load()) return false;
  auto it = plugins_.find(name);
  if (it == plugins_.end()) return false;
  return CacheHit(it->second.get(), ev, Clock::now(), out, accept);
}

void PluginDispatcher::Impl::Decide(const std::string& name, const SyscallEvent& ev, Done done) {
  const Clock::time_point start = Clock::now();
  auto it = plugins_.find(name);
  if (it == plugins_.end()) {
    PluginResult r;
    r.plugin = name;
    r.error_kind = ErrorKind::kUnknownPlugin;
    r.error = absl::NotFoundError(absl::StrCat("no plugin named \"", name, "\""));
    done(std::move(r));
    return;
  }
  PluginState* p = it->second.get();
  // Cache first, before anything is allocated for an RPC.
  {
    PluginResult r;
    if (!shutting_down_.load() && CacheHit(p, ev, start, &r)) {
      done(std::move(r));
      return;
    }
  }
  {
    std::lock_guard<std::mutex> l(p->stats_mu);
    ++p->stats.calls;
  }
  auto call = std::make_shared<PendingCall>();
  call->plugin = p;
  call->done = std::move(done);
  call->start = start;
  call->syscall = ev.syscall;
  call->nr = ev.nr;
  call->arch = ev.arch;
  for (int i = 0; i < 6; ++i) call->args[i] = ev.args[i];
  call->sc_key = SyscallContainerKey(name, ev);
  call->exact_key = ExactArgsKey(name, ev);
  p->in_flight.fetch_add(1);  // Finish() takes it back

  if (shutting_down_.load()) {
    Finish(call, Error(*p, ErrorKind::kShutdown, absl::CancelledError("dispatcher shutting down")));
    return;
  }
  // The cache was asked above (CacheHit) and had no valid answer.
  {
    std::lock_guard<std::mutex> l(p->stats_mu);
    ++p->stats.cache_misses;
  }
  if (p->health.load() == kHealthNotServing) {
    Finish(call, Error(*p, ErrorKind::kNotServing, absl::UnavailableError("plugin health is NOT_SERVING")));
    return;
  }
  if (p->in_flight.load() > static_cast<int64_t>(p->cfg.max_in_flight())) {
    Finish(call, Error(*p, ErrorKind::kOverloaded,
                       absl::ResourceExhaustedError(
                           absl::StrCat("max_in_flight ", p->cfg.max_in_flight(), " reached"))));
    return;
  }
  {
    std::lock_guard<std::mutex> l(p->stats_mu);
    ++p->stats.rpcs;
  }
  // The dispatcher's own deadline: fires even when gRPC's does not (a
  // wedged stream has no per-message deadline).
  const Clock::time_point deadline = start + std::chrono::milliseconds(p->cfg.timeout_ms());
  v1::Notification n = BuildNotification(ev, opts_.max_write_bytes);
  if (p->cfg.stream()) {
    // Timer first: the answer may arrive before Send returns.
    call->timer_id.store(timers_->Schedule(deadline, [this, call, deadline](bool shutdown) {
      NoteLateness(call->plugin, deadline);
      // Forget the id on the stream first (a late answer is then counted as
      // late, and a wedged stream is reset before anyone hears of the
      // timeout), then deliver.
      std::shared_ptr<StreamReactor> s;
      uint64_t id = 0;
      {
        std::lock_guard<std::mutex> cl(call->stream_mu);
        s = call->stream.lock();
        id = call->request_id;
      }
      if (s && !call->finished.load()) s->OnTimeout(id);
      Finish(call, shutdown ? Error(*call->plugin, ErrorKind::kShutdown,
                                    absl::CancelledError("dispatcher shutting down"))
                            : Error(*call->plugin, ErrorKind::kTimeout,
                                    absl::DeadlineExceededError(absl::StrCat(
                                        "no answer within ", call->plugin->cfg.timeout_ms(), " ms"))));
    }));
    if (call->finished.load()) timers_->Cancel(call->timer_id.load());
    std::shared_ptr<StreamReactor> s;
    bool fresh = false;
    {
      std::lock_guard<std::mutex> l(p->stream_mu);
      if (p->stream == nullptr) {
        p->stream = std::make_shared<StreamReactor>(this, p);
        p->stream->Bind();
        fresh = true;
      }
      s = p->stream;
    }
    if (fresh) s->Start();
    if (!s->Send(call, n)) {
      Finish(call, Error(*p, ErrorKind::kUnavailable, absl::UnavailableError("plugin stream closing")));
    }
    return;
  }
  call->req.mutable_notification()->Swap(&n);
  call->ctx.set_deadline(ToSystem(deadline));
  outstanding_.fetch_add(1);
  call->timer_id.store(timers_->Schedule(deadline + std::chrono::milliseconds(2), [this, call,
                                                                                   deadline](bool shutdown) {
    NoteLateness(call->plugin, deadline + std::chrono::milliseconds(2));
    if (Finish(call, shutdown ? Error(*call->plugin, ErrorKind::kShutdown,
                                      absl::CancelledError("dispatcher shutting down"))
                              : Error(*call->plugin, ErrorKind::kTimeout,
                                      absl::DeadlineExceededError(absl::StrCat(
                                          "no answer within ", call->plugin->cfg.timeout_ms(), " ms"))))) {
      call->ctx.TryCancel();
    }
  }));
  p->stub->async()->Decide(&call->ctx, &call->req, &call->resp, [this, call](grpc::Status s) {
    CompleteWithDecision(call, call->resp.has_decision() ? &call->resp.decision() : nullptr, s);
    Release();
  });
}

// Brings the next health check forward (after a call failed as
// unavailable), at most one check per initial_backoff.
void PluginDispatcher::Impl::KickHealth(PluginState* p) {
  {
    std::lock_guard<std::mutex> l(health_mu_);
    const Clock::time_point soon = p->last_health_check + absl::ToChronoNanoseconds(opts_.initial_backoff);
    if (soon >= p->next_health_check) return;
    p->next_health_check = soon;
  }
  health_cv_.notify_all();
}

void PluginDispatcher::Impl::HealthLoop() {
  std::unique_lock<std::mutex> l(health_mu_);
  while (!health_stop_) {
    const Clock::time_point now = Clock::now();
    Clock::time_point next = now + absl::ToChronoNanoseconds(opts_.health_interval);
    for (auto& kv : plugins_) {
      PluginState* p = kv.second.get();
      if (p->next_health_check <= now) {
        p->next_health_check = now + absl::ToChronoNanoseconds(opts_.health_interval);
        p->last_health_check = now;
        if (!p->health_check_running.exchange(true)) {
          l.unlock();
          StartHealthCheck(p, p->health_use_overall.load());
          l.lock();
        }
      }
      next = std::min(next, p->next_health_check);
    }
    health_cv_.wait_until(l, next);
  }
}

void PluginDispatcher::Impl::StartHealthCheck(PluginState* p, bool overall) {
  struct Check {
    grpc::ClientContext ctx;
    health::HealthCheckRequest req;
    health::HealthCheckResponse resp;
  };
  auto c = std::make_shared<Check>();
  c->req.set_service(overall ? "" : kServiceName);
  c->ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(opts_.health_timeout));
  outstanding_.fetch_add(1);
  p->health_stub->async()->Check(&c->ctx, &c->req, &c->resp, [this, p, c, overall](grpc::Status s) {
    bool again = false;
    if (s.ok()) {
      p->health.store(c->resp.status() == health::HealthCheckResponse::SERVING ? kHealthServing
                                                                               : kHealthNotServing);
    } else if (s.error_code() == grpc::StatusCode::NOT_FOUND && !overall) {
      // The server keeps no status for our service name: ask about the
      // server as a whole from now on.
      p->health_use_overall.store(true);
      again = true;
    } else if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      p->health.store(kHealthServing);  // no health service: calls decide
    } else {
      // Unreachable or slow: unknown. Calls are still tried (and fail fast
      // while the channel is down); not a reason to refuse them.
      p->health.store(kHealthUnknown);
    }
    if (again && !shutting_down_.load()) {
      StartHealthCheck(p, true);
    } else {
      p->health_check_running.store(false);
    }
    Release();
  });
}

std::vector<PluginStats> PluginDispatcher::Impl::Stats() const {
  std::vector<PluginStats> out;
  for (const auto& kv : plugins_) out.push_back(*StatsFor(kv.first));
  return out;
}

absl::StatusOr<PluginStats> PluginDispatcher::Impl::StatsFor(const std::string& name) const {
  auto it = plugins_.find(name);
  if (it == plugins_.end()) return absl::NotFoundError(absl::StrCat("no plugin named \"", name, "\""));
  const PluginState& p = *it->second;
  PluginStats s;
  {
    std::lock_guard<std::mutex> l(p.stats_mu);
    s = p.stats;
  }
  s.in_flight = p.in_flight.load();
  const int h = p.health.load();
  s.health = h == kHealthServing ? "serving" : h == kHealthNotServing ? "not_serving" : "unknown";
  return s;
}

// --- PluginDispatcher -------------------------------------------------------

PluginDispatcher::PluginDispatcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PluginDispatcher::~PluginDispatcher() = default;

absl::StatusOr<std::unique_ptr<PluginDispatcher>> PluginDispatcher::Create(
    const std::vector<v1::PluginConfig>& plugins, Options options) {
  PinCallbackCompletionQueue();
  auto impl = std::make_unique<Impl>(std::move(options));
  for (const v1::PluginConfig& pc : plugins) {
    if (absl::Status s = impl->AddPlugin(pc); !s.ok()) return s;
  }
  impl->StartHealth();
  return std::unique_ptr<PluginDispatcher>(new PluginDispatcher(std::move(impl)));
}

void PluginDispatcher::Decide(const std::string& name, const SyscallEvent& ev, Done done) {
  impl_->Decide(name, ev, std::move(done));
}

bool PluginDispatcher::DecideCached(const std::string& name, const SyscallEvent& ev, PluginResult* out,
                                    const std::function<bool(const PluginResult&)>& accept) {
  return impl_->DecideCached(name, ev, out, accept);
}

namespace {
struct ChainState {
  std::vector<std::string> names;
  ContainerInfo container;
  SyscallEvent ev;
  PluginDispatcher::Done done;
  size_t next = 0;
};

void ChainStep(PluginDispatcher* d, std::shared_ptr<ChainState> st) {
  if (st->next >= st->names.size()) {
    PluginResult r;
    r.kind = PluginResult::Kind::kNoOpinion;
    PluginDispatcher::Done done = std::move(st->done);
    done(std::move(r));
    return;
  }
  const std::string& name = st->names[st->next++];
  d->Decide(name, st->ev, [d, st](PluginResult r) {
    if (r.kind == PluginResult::Kind::kNoOpinion) {
      ChainStep(d, st);
      return;
    }
    PluginDispatcher::Done done = std::move(st->done);
    done(std::move(r));
  });
}
}  // namespace

void PluginDispatcher::DecideChain(const std::vector<std::string>& names, const SyscallEvent& ev, Done done) {
  auto st = std::make_shared<ChainState>();
  st->names = names;
  st->ev = ev;
  if (ev.container != nullptr) st->container = *ev.container;
  st->ev.container = &st->container;
  st->done = std::move(done);
  ChainStep(this, std::move(st));
}

std::vector<PluginStats> PluginDispatcher::Stats() const { return impl_->Stats(); }
absl::StatusOr<PluginStats> PluginDispatcher::StatsFor(const std::string& name) const {
  return impl_->StatsFor(name);
}

}  // namespace plugin
}  // namespace seccomp_agent
