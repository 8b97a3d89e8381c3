// Internal to the dispatcher: what it keeps per plugin and per call in
// flight, and the narrow interface the stream reactor and the health
// checker call back into. Not part of the dispatcher's API.
#ifndef SECCOMP_AGENT_PLUGIN_PLUGIN_STATE_H_
#define SECCOMP_AGENT_PLUGIN_PLUGIN_STATE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "agent/plugin/dispatcher.h"
#include "agent/plugin/transition_log.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/seccompagent/v1/plugin.grpc.pb.h"

namespace seccomp_agent::plugin {

using Clock = std::chrono::steady_clock;

enum Health : int { kHealthUnknown = 0, kHealthServing = 1, kHealthNotServing = 2 };

class StreamReactor;

struct PluginState {
  v1::PluginConfig cfg;  // with defaults
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::PolicyPlugin::Stub> stub;
  std::unique_ptr<::grpc::health::v1::Health::Stub> health_stub;
  std::atomic<int> health{kHealthUnknown};
  std::atomic<int64_t> in_flight{0};

  // Health checking (HealthChecker's thread + Check callbacks).
  std::atomic<bool> health_check_running{false};
  std::atomic<bool> health_use_overall{false};  // server knows no per-service status
  Clock::time_point next_health_check{};        // under the checker's lock
  Clock::time_point last_health_check{};        // under the checker's lock

  std::mutex stream_mu;
  std::shared_ptr<StreamReactor> stream;  // current stream, may be null

  mutable std::mutex stats_mu;
  PluginStats stats;
  // Hits answered by DecideCached, counted without stats_mu (one atomic
  // add on the engine's fast path); StatsFor adds them to `stats` as calls,
  // cache hits and decisions in the first latency bucket (<= 50 us: the
  // lookup takes well under a microsecond).
  std::atomic<uint64_t> plain_hits{0};

  std::unique_ptr<TransitionLog> transitions;  // set by AddPlugin
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
  // Unary only (a grpc::ClientContext is not cheap to make; a stream call
  // needs none).
  struct Unary {
    grpc::ClientContext ctx;
    v1::DecideRequest req;
    v1::DecideResponse resp;
  };
  std::unique_ptr<Unary> unary;
  // Stream. Set by StreamReactor::Send, read by the timer.
  std::mutex stream_mu;
  uint64_t request_id = 0;
  std::weak_ptr<StreamReactor> stream;
};

// gRPC operations whose callbacks have not run yet (unary calls, health
// checks, streams): the dispatcher's destructor waits for none.
class OutstandingOps {
 public:
  void Begin() { n_.fetch_add(1); }
  void End() {
    if (n_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> l(mu_);
      cv_.notify_all();
    }
  }
  void WaitForNone() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return n_.load() == 0; });
  }

 private:
  std::atomic<int64_t> n_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

// What the stream reactor needs from the dispatcher.
class CallSink {
 public:
  virtual ~CallSink() = default;
  // Validates `d` (null: the response had none) and completes `call`.
  virtual void CompleteWithDecision(const std::shared_ptr<PendingCall>& call, const v1::Decision* d,
                                    const grpc::Status& status) = 0;
  // Completes `call` with an error of `kind`.
  virtual void FailCall(const std::shared_ptr<PendingCall>& call, ErrorKind kind,
                        absl::Status s) = 0;
  // After a call failed as unavailable: check health soon.
  virtual void KickHealth(PluginState* p) = 0;
  virtual OutstandingOps& outstanding() = 0;
  virtual int stream_timeouts_before_reset() const = 0;
};

}  // namespace seccomp_agent::plugin

#endif  // SECCOMP_AGENT_PLUGIN_PLUGIN_STATE_H_
