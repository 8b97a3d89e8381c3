// The agent's client of gRPC policy plugins (proto/seccompagent/v1/plugin.proto).
// One dispatcher serves one set of PluginConfigs (one policy version): build
// a new one for a new policy and destroy the old one when it is idle.
//
// PluginDispatcher owns one gRPC channel per declared plugin and answers
// "what does plugin NAME say about this syscall?" ASYNCHRONOUSLY: Decide()
// never blocks the calling engine worker on the network; the answer comes
// back through a callback. Per plugin it enforces:
//   * a deadline on every call (PluginConfig.timeout_ms, default 100 ms),
//     set on the gRPC context AND guarded by the dispatcher's own timer, so
//     `done` runs within timeout + a few ms even when the plugin hangs or a
//     stream is wedged;
//   * bounded concurrency (max_in_flight, default 64): the call over the
//     limit fails at once with kOverloaded;
//   * health: grpc.health.v1 Check at start, every health_interval, and
//     soon after a call fails as unavailable; while the plugin reports
//     NOT_SERVING every call fails at once with kNotServing;
//   * reconnects with exponential backoff (gRPC channel args); a call
//     while the channel is down fails fast (kUnavailable), as do all calls
//     pending on a stream that breaks; the next call opens a new stream;
//   * validation of every decision (decision.h): an invalid one is a
//     plugin error (kInvalid);
//   * a decision cache honouring the plugin's CacheHint (bounded, TTL).
//
// Errors never become decisions here: the result carries the error and the
// plugin's resolved on_error/error_errno, and the engine applies them.
#ifndef SECCOMP_AGENT_PLUGIN_DISPATCHER_H_
#define SECCOMP_AGENT_PLUGIN_DISPATCHER_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/plugin/decision.h"
#include "agent/plugin/transition_log.h"
#include "agent/model/event.h"
#include "proto/seccompagent/v1/plugin.pb.h"
#include "proto/seccompagent/v1/policy.pb.h"

namespace seccomp_agent::plugin {

struct PluginState;  // the dispatcher's own, per plugin (plugin_state.h)

// Why a plugin call produced no decision.
enum class ErrorKind {
  kNone = 0,
  kTimeout,        // no answer within timeout_ms (DEADLINE_EXCEEDED or our timer)
  kUnavailable,    // channel down, connection refused, stream broken
  kInvalid,        // the answer failed ValidateDecision, or did not parse
  kOverloaded,     // max_in_flight reached: not sent
  kNotServing,     // the health check says NOT_SERVING: not sent
  kRpcError,       // the plugin failed the RPC with another status
  kUnknownPlugin,  // no plugin of that name
  kShutdown,       // the dispatcher is being destroyed
};
inline constexpr int kNumErrorKinds = 9;
const char* ErrorKindName(ErrorKind k);  // "timeout", "unavailable", ...

struct PluginResult {
  enum class Kind {
    kAction,     // execute `action` (allow/deny/return/redirect_open/rewrite_bind/replace_write)
    kInject,     // execute `inject` (validated against the trapped syscall)
    kNoOpinion,  // the plugin defers: continue with the next rule
    kError,      // apply on_error (error/error_kind say why)
  };
  Kind kind = Kind::kError;
  std::string plugin;  // the plugin's name
  v1::Action action;   // kAction only
  v1::Inject inject;   // kInject only
  ErrorKind error_kind = ErrorKind::kNone;
  absl::Status error;  // kError only
  // The plugin's PluginConfig.on_error and error_errno with defaults
  // resolved: never ON_ERROR_UNSPECIFIED (-> DENY), never 0 (-> EPERM).
  // Filled for every result (an unknown plugin gets DENY/EPERM).
  v1::PluginConfig::OnError on_error = v1::PluginConfig::DENY;
  int error_errno = 1;
  bool from_cache = false;  // answered by the decision cache
  std::string reason;       // Decision.reason (<= 256 bytes)
  absl::Duration latency;   // from Decide() to the result
};

// Latency histogram buckets (upper bounds, microseconds; the last one is
// +Inf). Cumulative-free counts per bucket: Prometheus sums them.
inline constexpr std::array<int64_t, 14> kLatencyBucketsUs = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, INT64_MAX};

struct PluginStats {
  std::string name;
  uint64_t calls = 0;      // Decide() calls for this plugin
  uint64_t decisions = 0;  // kAction + kInject results (from cache or plugin)
  uint64_t no_opinion = 0;
  std::array<uint64_t, kNumErrorKinds> errors{};  // indexed by ErrorKind
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t rpcs = 0;  // requests actually sent (unary calls + stream messages)
  uint64_t streams_opened = 0;
  uint64_t late_or_unknown_responses = 0;  // stream answers for no pending id
  // Worst delay between a deadline and the dispatcher's timer acting on it
  // (scheduling latency of the deadline thread), microseconds.
  uint64_t timer_lateness_max_us = 0;
  int64_t in_flight = 0;
  std::array<uint64_t, kLatencyBucketsUs.size()> latency_buckets{};  // results by latency
  uint64_t latency_sum_us = 0;
  std::string health;  // "unknown", "serving", "not_serving"

  uint64_t errors_of(ErrorKind k) const { return errors[static_cast<int>(k)]; }
};

struct DispatcherOptions {
  // Decision cache: maximum entries (all plugins), and a cap on hint TTLs.
  size_t cache_capacity = 4096;
  absl::Duration max_cache_ttl = absl::Seconds(60);
  // Health checking: period, and the deadline of each Check.
  absl::Duration health_interval = absl::Seconds(5);
  absl::Duration health_timeout = absl::Milliseconds(500);
  // How often TLS files (PluginTls) are re-read for rotated certificates.
  absl::Duration tls_refresh = absl::Seconds(10);
  // Reconnect backoff (gRPC channel args), first and maximum. The maximum
  // bounds how long a restarted plugin waits to be used again: with 5 s
  // (gRPC's growth from 100 ms) a restart took 1.1-2.4 s to be noticed;
  // a connect attempt to a unix socket or a peer on the cluster network is
  // cheap, so the channel retries at least every 250 ms (+-20% jitter).
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Milliseconds(250);
  // A stream with this many consecutive timeouts and no answer in between is
  // cancelled and reopened (a wedged stream heals itself).
  int stream_timeouts_before_reset = 3;
  // Bytes of a write's buffer sent to plugins (Decoded.write.data).
  size_t max_write_bytes = 4096;
  // Policy.redirect_roots: where redirect_open decisions may point.
  std::vector<std::string> redirect_roots;
  // The decision cache's clock (expiry); null: steady_clock::now. Tests
  // inject one to expire entries without sleeping.
  std::function<std::chrono::steady_clock::time_point()> now;
  // Where a plugin's availability changes are logged (one line each:
  // unavailable, a streak of stream_timeouts_before_reset timeouts,
  // healthy again); null: spdlog.
  LogSink log;
};

class PluginDispatcher {
 public:
  using Options = DispatcherOptions;
  using Done = std::function<void(PluginResult)>;

  // Creates channels for every plugin (no blocking connect: the channels
  // connect in the background and the first health check starts at once).
  // Fails on duplicate/empty names or an unusable address.
  static absl::StatusOr<std::unique_ptr<PluginDispatcher>> Create(
      const std::vector<v1::PluginConfig>& plugins, Options options);

  // Cancels every call and stream, calls the `done` of each pending decision
  // with kShutdown, and waits for gRPC to let go of them.
  ~PluginDispatcher();

  // Asks plugin `name` about `ev`. Calls `done` exactly once, from any
  // thread (possibly inline, before Decide returns: cache hits, overload,
  // not serving, unknown plugin), within the plugin's timeout + a few ms.
  // `ev` is only read during this call (it may be freed afterwards).
  // `done` should be quick (it runs on a gRPC or timer thread); no
  // dispatcher lock is held while it runs, so it may call Decide again.
  // Decide must not race with the destructor.
  void Decide(const std::string& name, const SyscallEvent& ev, Done done);

  // The plugin named `name`, for DecideCached; valid as long as this
  // dispatcher; null when there is none. The engine's fast path finds a
  // plugin once per dispatcher, not once per call.
  PluginState* Find(const std::string& name) const;
  // The cache alone, synchronously: true and `*out` when `plugin` (from
  // Find, never null) has a valid cached allow, deny or return for `ev`
  // (counted like Decide's hit: a call, a cache hit, a decision); false
  // otherwise, with nothing counted (then call Decide: a cached no_opinion
  // or substitution is answered there). Expiry is checked at
  // `ev.received_ns` when set (no clock read here) unless Options::now is
  // given. Never blocks, never touches the network, allocates nothing: the
  // engine's leader answers cache hits itself, like a local rule, instead
  // of handing off leadership.
  bool DecideCached(PluginState* plugin, const SyscallEvent& ev, PlainDecision* out);

  std::vector<PluginStats> Stats() const;
  absl::StatusOr<PluginStats> StatsFor(const std::string& name) const;
  // The plugins' names (fixed at Create).
  std::vector<std::string> Names() const;

  class Impl;

 private:
  explicit PluginDispatcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Defaults applied to a PluginConfig (timeout 100 ms, max_in_flight 64,
// on_error DENY, error_errno EPERM).
v1::PluginConfig WithDefaults(const v1::PluginConfig& pc);

}  // namespace seccomp_agent::plugin

#endif  // SECCOMP_AGENT_PLUGIN_DISPATCHER_H_
