// PluginDispatcher: per plugin a channel, a unary or stream path, deadlines
// (timer_queue.h), the cache (decision_cache.h), health (health_checker.h).
#include "agent/plugin/dispatcher.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/common/status.h"
#include "agent/plugin/credentials.h"
#include "agent/plugin/decision_cache.h"
#include "agent/plugin/grpc_pin.h"
#include "agent/plugin/health_checker.h"
#include "agent/plugin/plugin_state.h"
#include "agent/plugin/stream_reactor.h"
#include "agent/plugin/timer_queue.h"

namespace seccomp_agent::plugin {

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
  if (pc.on_error() == v1::PluginConfig::ON_ERROR_UNSPECIFIED) {
    pc.set_on_error(v1::PluginConfig::DENY);
  }
  if (pc.error_errno() == 0) pc.set_error_errno(1);  // EPERM
  return pc;
}

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
    case v1::Decision::kSysinfo:
      *r->action.mutable_sysinfo() = d.sysinfo();
      break;
    case v1::Decision::kMknod:
      *r->action.mutable_mknod() = d.mknod();
      break;
    case v1::Decision::kMount:
      *r->action.mutable_mount() = d.mount();
      break;
    case v1::Decision::kSetxattr:
      *r->action.mutable_setxattr() = d.setxattr();
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

void CountLatency(PluginStats& st, absl::Duration latency) {
  const int64_t us = absl::ToInt64Microseconds(latency);
  size_t b = 0;
  while (b + 1 < kLatencyBucketsUs.size() && us > kLatencyBucketsUs[b]) ++b;
  ++st.latency_buckets[b];
  st.latency_sum_us += static_cast<uint64_t>(std::max<int64_t>(us, 0));
}

void NoteLateness(PluginState* p, Clock::time_point due) {
  const uint64_t us = static_cast<uint64_t>(std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - due).count()));
  std::lock_guard<std::mutex> l(p->stats_mu);
  p->stats.timer_lateness_max_us = std::max(p->stats.timer_lateness_max_us, us);
}

// What a failed call does, for the transition log.
std::string OnErrorText(const v1::PluginConfig& pc) {
  switch (pc.on_error()) {
    case v1::PluginConfig::ALLOW:
      return "are allowed (on_error: allow)";
    case v1::PluginConfig::LOCAL:
      return "go to the local rules (on_error: local)";
    default:
      return absl::StrCat("are denied with ", ErrnoName(static_cast<int>(pc.error_errno())),
                          " (on_error: deny)");
  }
}

void NoteTransition(PluginState* p, const PluginResult& r) {
  if (r.kind != PluginResult::Kind::kError) return p->transitions->OnAnswer();
  switch (r.error_kind) {
    case ErrorKind::kUnavailable:
      return p->transitions->OnUnavailable(std::string(r.error.message()));
    case ErrorKind::kTimeout:
      return p->transitions->OnTimeout();
    case ErrorKind::kShutdown:
      return;
    default:
      return p->transitions->OnOtherError();
  }
}

absl::Status TimeoutError(const PluginState& p) {
  return absl::DeadlineExceededError(absl::StrCat("no answer within ", p.cfg.timeout_ms(), " ms"));
}

}  // namespace

class PluginDispatcher::Impl : public CallSink {
 public:
  explicit Impl(Options opts) : opts_(std::move(opts)), cache_(opts_.cache_capacity, opts_.now) {}
  ~Impl() override;

  absl::Status AddPlugin(const v1::PluginConfig& pc);
  void StartHealth();

  void Decide(const std::string& name, const SyscallEvent& ev, Done done);
  bool DecideCached(PluginState* p, const SyscallEvent& ev, PlainDecision* out);
  PluginState* Find(const std::string& name) const {
    auto it = plugins_.find(name);
    return it == plugins_.end() ? nullptr : it->second.get();
  }
  std::vector<PluginStats> Stats() const;
  absl::StatusOr<PluginStats> StatsFor(const std::string& name) const;
  std::vector<std::string> Names() const {
    std::vector<std::string> out;
    for (const auto& kv : plugins_) out.push_back(kv.first);
    return out;
  }

  // CallSink.
  void CompleteWithDecision(const std::shared_ptr<PendingCall>& call, const v1::Decision* d,
                            const grpc::Status& status) override;
  void FailCall(const std::shared_ptr<PendingCall>& call, ErrorKind kind, absl::Status s) override {
    Finish(call, Error(*call->plugin, kind, std::move(s)));
  }
  void KickHealth(PluginState* p) override {
    if (health_ != nullptr) health_->Kick(p);
  }
  OutstandingOps& outstanding() override { return ops_; }
  int stream_timeouts_before_reset() const override { return opts_.stream_timeouts_before_reset; }

 private:
  bool Finish(const std::shared_ptr<PendingCall>& call, PluginResult r);
  PluginResult Error(const PluginState& p, ErrorKind kind, absl::Status s) const;
  // A cache hit, counted as a call, a hit and a decision; or false (nothing
  // counted).
  bool CacheHit(PluginState* p, const SyscallEvent& ev, Clock::time_point start, PluginResult* out);
  void CountHit(PluginState* p, bool no_opinion, Clock::duration latency);
  void StoreInCache(const PendingCall& call, const v1::Decision& d);
  std::shared_ptr<PendingCall> NewCall(PluginState* p, const SyscallEvent& ev, Done done,
                                       Clock::time_point start);
  // Fails `call` at once when the plugin may not be asked now.
  bool RefuseEarly(PluginState* p, const std::shared_ptr<PendingCall>& call);
  void SendUnary(const std::shared_ptr<PendingCall>& call, v1::Notification n,
                 Clock::time_point deadline);
  void SendStream(const std::shared_ptr<PendingCall>& call, v1::Notification n,
                  Clock::time_point deadline);
  std::shared_ptr<StreamReactor> CurrentStream(PluginState* p);
  grpc::ChannelArguments ChannelArgs() const;

  Options opts_;
  DecisionCache cache_;
  std::unique_ptr<TimerQueue> timers_ = std::make_unique<TimerQueue>();
  std::map<std::string, std::unique_ptr<PluginState>> plugins_;  // fixed after Create
  std::atomic<bool> shutting_down_{false};
  OutstandingOps ops_;
  std::unique_ptr<HealthChecker> health_;  // after plugins_ and ops_, which it uses
};

grpc::ChannelArguments PluginDispatcher::Impl::ChannelArgs() const {
  grpc::ChannelArguments args;
  const int initial = static_cast<int>(absl::ToInt64Milliseconds(opts_.initial_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, initial);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, initial);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(opts_.max_backoff)));
  // Each plugin (and each dispatcher) has its own connection and backoff.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A decision is not retried behind our back: the deadline is short and
  // a retry of a plugin with side effects (audit logs) would double them.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  return args;
}

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
  grpc::ChannelArguments args = ChannelArgs();
  auto creds = PluginCredentials(p->cfg, opts_.tls_refresh, &args);
  if (!creds.ok()) return creds.status();
  p->channel = grpc::CreateCustomChannel(p->cfg.address(), *creds, args);
  if (p->channel == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("plugin \"", in.name(), "\": bad address \"", in.address(), "\""));
  }
  p->stub = v1::PolicyPlugin::NewStub(p->channel);
  p->health_stub = health::Health::NewStub(p->channel);
  p->transitions =
      std::make_unique<TransitionLog>(p->cfg.name(), OnErrorText(p->cfg), p->cfg.timeout_ms(),
                                      opts_.stream_timeouts_before_reset, opts_.log);
  plugins_.emplace(in.name(), std::move(p));
  return absl::OkStatus();
}

void PluginDispatcher::Impl::StartHealth() {
  std::vector<PluginState*> ps;
  for (auto& kv : plugins_) ps.push_back(kv.second.get());
  health_ = std::make_unique<HealthChecker>(
      HealthChecker::Options{opts_.health_interval, opts_.health_timeout, opts_.initial_backoff},
      std::move(ps), &ops_);
  health_->Start();
}

PluginDispatcher::Impl::~Impl() {
  shutting_down_.store(true);
  if (health_ != nullptr) health_->Stop();
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
  ops_.WaitForNone();
}

PluginResult PluginDispatcher::Impl::Error(const PluginState& p, ErrorKind kind,
                                           absl::Status s) const {
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
    CountLatency(st, r.latency);
  }
  NoteTransition(p, r);
  if (r.kind == PluginResult::Kind::kError && r.error_kind == ErrorKind::kUnavailable) {
    KickHealth(p);
  }
  Done done = std::move(call->done);
  done(std::move(r));
  return true;
}

void PluginDispatcher::Impl::StoreInCache(const PendingCall& call, const v1::Decision& d) {
  const v1::CacheHint& hint = d.cache();
  if (d.has_no_opinion() || hint.scope() == v1::CacheHint::SCOPE_UNSPECIFIED ||
      hint.ttl_ms() == 0) {
    return;
  }
  const absl::Duration ttl = std::min(absl::Milliseconds(hint.ttl_ms()), opts_.max_cache_ttl);
  v1::Decision stored = d;
  stored.clear_cache();
  const bool exact = hint.scope() == v1::CacheHint::SCOPE_EXACT_ARGS;
  cache_.Put(exact ? call.exact_key : call.sc_key, stored, absl::ToChronoNanoseconds(ttl));
}

void PluginDispatcher::Impl::CompleteWithDecision(const std::shared_ptr<PendingCall>& call,
                                                  const v1::Decision* d,
                                                  const grpc::Status& status) {
  PluginState& p = *call->plugin;
  if (!status.ok()) {
    Finish(call, Error(p, KindOfStatus(status), ToAbsl(status)));
    return;
  }
  if (d == nullptr) {
    Finish(call,
           Error(p, ErrorKind::kInvalid, absl::InvalidArgumentError("response has no decision")));
    return;
  }
  const ValidationContext vctx = ContextOf(*call, &opts_.redirect_roots);
  if (absl::Status v = ValidateDecision(*d, vctx); !v.ok()) {
    Finish(call, Error(p, ErrorKind::kInvalid, std::move(v)));
    return;
  }
  StoreInCache(*call, *d);
  PluginResult r;
  FillResult(*d, &r);
  Finish(call, std::move(r));
}

// Cache: syscall+container scope first, then exact args; the first live
// entry valid for this syscall answers (a cached write return may not fit
// another write). The keys are written into this thread's buffer: a hit
// allocates no key. A hit is complete here: no PendingCall (nor its
// grpc::ClientContext), no timer, no in_flight.
template <typename Get>
bool LookUp(absl::string_view plugin, const SyscallEvent& ev, const Get& get) {
  thread_local std::string key;
  FillSyscallContainerKey(&key, plugin, ev);
  if (get(key)) return true;
  FillExactArgsKey(&key, plugin, ev);
  return get(key);
}

void PluginDispatcher::Impl::CountHit(PluginState* p, bool no_opinion, Clock::duration latency) {
  std::lock_guard<std::mutex> l(p->stats_mu);
  PluginStats& st = p->stats;
  ++st.calls;
  ++st.cache_hits;
  ++(no_opinion ? st.no_opinion : st.decisions);
  CountLatency(st, absl::FromChrono(latency));
}

bool PluginDispatcher::Impl::CacheHit(PluginState* p, const SyscallEvent& ev,
                                      Clock::time_point start, PluginResult* out) {
  const std::string& name = p->cfg.name();
  std::shared_ptr<const v1::Decision> cached;
  const ValidationContext vctx = ContextFor(ev, &opts_.redirect_roots);
  if (!LookUp(name, ev, [&](absl::string_view key) {
        return cache_.Get(key, &cached) && ValidateDecision(*cached, vctx).ok();
      })) {
    return false;
  }
  PluginResult r;
  FillResult(*cached, &r);
  r.from_cache = true;
  r.plugin = name;
  r.on_error = p->cfg.on_error();
  r.error_errno = p->cfg.error_errno();
  const Clock::duration latency = Clock::now() - start;
  r.latency = absl::FromChrono(latency);
  CountHit(p, r.kind == PluginResult::Kind::kNoOpinion, latency);
  *out = std::move(r);
  return true;
}

// The same lookup, for plain answers only. An entry that would answer
// Decide with something else (no_opinion, a substitution) is not skipped
// for a later key: the caller goes on with Decide, which finds it.
bool PluginDispatcher::Impl::DecideCached(PluginState* p, const SyscallEvent& ev,
                                          PlainDecision* out) {
  if (shutting_down_.load(std::memory_order_relaxed)) return false;
  // Both keys' expiry is checked at one instant: when the engine received
  // the notification (its clock read), else now. The lookup takes well
  // under a microsecond, so a hit is counted in the first latency bucket
  // unmeasured (StatsFor); the engine's decision latency includes it.
  const MonoClock::time_point now =
      ev.received_ns > 0 && !opts_.now
          ? MonoClock::time_point(std::chrono::nanoseconds(ev.received_ns))
          : cache_.Now();
  const ValidationContext vctx = ContextFor(ev, &opts_.redirect_roots);
  PlainDecision d;
  bool other = false;
  if (!LookUp(p->cfg.name(), ev,
              [&](absl::string_view key) {
                return other || (cache_.GetPlain(key, now, &d, &other) && PlainValid(d, vctx));
              }) ||
      other || d.kind == PlainDecision::Kind::kNoOpinion) {
    return false;
  }
  p->plain_hits.fetch_add(1, std::memory_order_relaxed);
  *out = d;
  return true;
}

std::shared_ptr<PendingCall> PluginDispatcher::Impl::NewCall(PluginState* p, const SyscallEvent& ev,
                                                             Done done, Clock::time_point start) {
  auto call = std::make_shared<PendingCall>();
  call->plugin = p;
  call->done = std::move(done);
  call->start = start;
  call->syscall = ev.syscall;
  call->nr = ev.nr;
  call->arch = ev.arch;
  for (int i = 0; i < 6; ++i) call->args[i] = ev.args[i];
  call->sc_key = SyscallContainerKey(p->cfg.name(), ev);
  call->exact_key = ExactArgsKey(p->cfg.name(), ev);
  return call;
}

bool PluginDispatcher::Impl::RefuseEarly(PluginState* p, const std::shared_ptr<PendingCall>& call) {
  if (shutting_down_.load()) {
    Finish(call, Error(*p, ErrorKind::kShutdown, absl::CancelledError("dispatcher shutting down")));
    return true;
  }
  // The cache was asked before (CacheHit) and had no valid answer.
  {
    std::lock_guard<std::mutex> l(p->stats_mu);
    ++p->stats.cache_misses;
  }
  if (p->health.load() == kHealthNotServing) {
    Finish(call, Error(*p, ErrorKind::kNotServing,
                       absl::UnavailableError("plugin health is NOT_SERVING")));
    return true;
  }
  if (p->in_flight.load() > static_cast<int64_t>(p->cfg.max_in_flight())) {
    Finish(call, Error(*p, ErrorKind::kOverloaded,
                       absl::ResourceExhaustedError(
                           absl::StrCat("max_in_flight ", p->cfg.max_in_flight(), " reached"))));
    return true;
  }
  return false;
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
  std::shared_ptr<PendingCall> call = NewCall(p, ev, std::move(done), start);
  p->in_flight.fetch_add(1);  // Finish() takes it back
  if (RefuseEarly(p, call)) return;
  {
    std::lock_guard<std::mutex> l(p->stats_mu);
    ++p->stats.rpcs;
  }
  const Clock::time_point deadline = start + std::chrono::milliseconds(p->cfg.timeout_ms());
  v1::Notification n = BuildNotification(ev, opts_.max_write_bytes);
  if (p->cfg.stream()) {
    SendStream(call, std::move(n), deadline);
  } else {
    SendUnary(call, std::move(n), deadline);
  }
}

std::shared_ptr<StreamReactor> PluginDispatcher::Impl::CurrentStream(PluginState* p) {
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
  return s;
}

void PluginDispatcher::Impl::SendStream(const std::shared_ptr<PendingCall>& call,
                                        v1::Notification n, Clock::time_point deadline) {
  // The dispatcher's own deadline (a stream has no per-message one). Timer
  // first: the answer may arrive before Send returns.
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
    PluginState& p = *call->plugin;
    Finish(call, shutdown ? Error(p, ErrorKind::kShutdown,
                                  absl::CancelledError("dispatcher shutting down"))
                          : Error(p, ErrorKind::kTimeout, TimeoutError(p)));
  }));
  if (call->finished.load()) timers_->Cancel(call->timer_id.load());
  if (!CurrentStream(call->plugin)->Send(call, &n)) {
    FailCall(call, ErrorKind::kUnavailable, absl::UnavailableError("plugin stream closing"));
  }
}

void PluginDispatcher::Impl::SendUnary(const std::shared_ptr<PendingCall>& call, v1::Notification n,
                                       Clock::time_point deadline) {
  call->unary = std::make_unique<PendingCall::Unary>();
  PendingCall::Unary& u = *call->unary;
  u.req.mutable_notification()->Swap(&n);
  u.ctx.set_deadline(ToSystem(deadline));
  ops_.Begin();
  // gRPC's deadline first; ours 2 ms later in case gRPC's does not fire.
  const Clock::time_point ours = deadline + std::chrono::milliseconds(2);
  call->timer_id.store(timers_->Schedule(ours, [this, call, ours](bool shutdown) {
    NoteLateness(call->plugin, ours);
    PluginState& p = *call->plugin;
    if (Finish(call, shutdown ? Error(p, ErrorKind::kShutdown,
                                      absl::CancelledError("dispatcher shutting down"))
                              : Error(p, ErrorKind::kTimeout, TimeoutError(p)))) {
      call->unary->ctx.TryCancel();
    }
  }));
  call->plugin->stub->async()->Decide(&u.ctx, &u.req, &u.resp, [this, call](grpc::Status s) {
    const v1::DecideResponse& resp = call->unary->resp;
    CompleteWithDecision(call, resp.has_decision() ? &resp.decision() : nullptr, s);
    ops_.End();
  });
}

std::vector<PluginStats> PluginDispatcher::Impl::Stats() const {
  std::vector<PluginStats> out;
  for (const auto& kv : plugins_) out.push_back(*StatsFor(kv.first));
  return out;
}

absl::StatusOr<PluginStats> PluginDispatcher::Impl::StatsFor(const std::string& name) const {
  auto it = plugins_.find(name);
  if (it == plugins_.end()) {
    return absl::NotFoundError(absl::StrCat("no plugin named \"", name, "\""));
  }
  const PluginState& p = *it->second;
  PluginStats s;
  {
    std::lock_guard<std::mutex> l(p.stats_mu);
    s = p.stats;
  }
  const uint64_t plain_hits = p.plain_hits.load(std::memory_order_relaxed);
  s.calls += plain_hits;
  s.cache_hits += plain_hits;
  s.decisions += plain_hits;
  s.latency_buckets[0] += plain_hits;
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

bool PluginDispatcher::DecideCached(PluginState* plugin, const SyscallEvent& ev,
                                    PlainDecision* out) {
  return impl_->DecideCached(plugin, ev, out);
}

PluginState* PluginDispatcher::Find(const std::string& name) const { return impl_->Find(name); }

std::vector<PluginStats> PluginDispatcher::Stats() const { return impl_->Stats(); }
std::vector<std::string> PluginDispatcher::Names() const { return impl_->Names(); }
absl::StatusOr<PluginStats> PluginDispatcher::StatsFor(const std::string& name) const {
  return impl_->StatsFor(name);
}

}  // namespace seccomp_agent::plugin
