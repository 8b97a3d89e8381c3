// The live decision stream behind AdminService.WatchDecisions: a
// DecisionObserver that copies each decision into every subscriber's
// bounded queue.
//
// With no subscriber, OnDecision is one relaxed atomic load. With
// subscribers it takes a short mutex (the subscriber list) and copies the
// record's strings: the cost of watching, paid only while someone watches.
// A full queue drops the event and counts it; the engine never waits for a
// watcher. The subscriber learns how many it lost (Next() returns them).
#ifndef SECCOMP_AGENT_ADMIN_BROADCASTER_H_
#define SECCOMP_AGENT_ADMIN_BROADCASTER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/engine/decision_log.h"
#include "agent/engine/engine.h"

namespace seccomp_agent::admin {

// A copy of one decision (DecisionRecord's event is valid only during the
// observer call).
struct DecisionEventCopy {
  int64_t time_unix_ns = 0;
  std::string container_id, pod_namespace, pod_name, container_name;
  int32_t pid = 0;
  std::string syscall, path, rule, action, result, backend;
  int64_t latency_ns = 0;
};

class Broadcaster : public DecisionObserver {
 public:
  static constexpr size_t kDefaultQueue = 1024;
  static constexpr size_t kMaxQueue = 65536;

  class Subscription {
   public:
    ~Subscription();  // unsubscribes
    // Waits up to `timeout` for events; moves queued events into `*out` and
    // returns how many were dropped since the last call.
    uint64_t Next(absl::Duration timeout, std::vector<DecisionEventCopy>* out);

   private:
    friend class Broadcaster;
    Broadcaster* owner_ = nullptr;
    std::string container_id_, pod_namespace_;  // filters ("" = any)
    size_t cap_ = kDefaultQueue;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<DecisionEventCopy> queue_;
    uint64_t dropped_ = 0;
  };

  // `queue_size` 0 means kDefaultQueue; capped at kMaxQueue.
  std::unique_ptr<Subscription> Subscribe(const std::string& container_id,
                                          const std::string& pod_namespace, size_t queue_size);

  void OnDecision(const DecisionRecord& r) override;

  size_t subscribers() const { return count_.load(); }
  uint64_t dropped_total() const { return dropped_total_.load(); }

 private:
  void Unsubscribe(Subscription* s);
  std::mutex mu_;
  std::vector<Subscription*> subs_;
  std::atomic<size_t> count_{0};
  std::atomic<uint64_t> dropped_total_{0};
};

}  // namespace seccomp_agent::admin

#endif  // SECCOMP_AGENT_ADMIN_BROADCASTER_H_
