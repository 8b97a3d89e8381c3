// Decision metrics: a DecisionObserver that counts every decision by
// (container, syscall, action), times it into a latency histogram, counts
// injector backend use, and tracks active containers. Written for the
// engine's hot path:
//
//  * No allocation and no lock in OnDecision in the common case. Each
//    container owns a fixed open-addressing table of atomic counters keyed
//    by a packed (arch, syscall nr, action) uint32; a new key claims a slot
//    with one CAS. Action and backend names are interned into small fixed
//    tables (compared, never hashed or copied). The container's table is
//    found through a per-thread cache keyed by the ContainerInfo address;
//    the cache is invalidated by a generation number that changes only when
//    a container is added, removed or dropped. A miss takes one mutex
//    (once per thread per container per generation).
//  * The latency histogram, the backend counters and the overflow counters
//    are sharded per thread (cache-line aligned shards), so workers do not
//    bounce a shared line.
//  * Cost measured by decision_metrics_bench (see README in deploy/ for the
//    figures); decision_metrics_test asserts zero allocations.
//
// Bounded cardinality:
//  * At most Options::max_series (default 10000) (container, syscall,
//    action) series in total, and at most kMaxSeriesPerContainer per
//    container. Decisions that would need a series beyond either cap are
//    counted in seccomp_agent_notifications_unattributed_total{action}
//    instead, and seccomp_agent_notification_series_limit_hits_total counts
//    them.
//  * A removed container's series stay exported for Options::removed_grace
//    (default 5 min, so the last counts get scraped) and are then dropped
//    and their budget returned. Prometheus sees the series end.
//  * Two containers with the same labels (an id reused while the old one is
//    still in its grace period) are summed into one series at scrape time.
//  * At most kMaxActions action names and kMaxBackends backend names are
//    tracked; further names count as "other".
#ifndef SECCOMP_AGENT_METRICS_DECISION_METRICS_H_
#define SECCOMP_AGENT_METRICS_DECISION_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/engine/decision_log.h"
#include "agent/engine/engine.h"
#include "agent/model/event.h"

namespace seccomp_agent::metrics {

// A small append-only table of names, looked up without locks. Index 0 is
// "other" (the overflow name).
template <int N>
class InternTable {
 public:
  InternTable() {
    names_[0] = "other";
    count_.store(1);
  }
  // Index of `name`, adding it if there is room; 0 ("other") when full.
  int Intern(absl::string_view name) {
    int n = count_.load(std::memory_order_acquire);
    for (int i = 1; i < n; ++i) {
      if (names_[i] == name) return i;
    }
    std::lock_guard<std::mutex> lock(mu_);
    n = count_.load(std::memory_order_relaxed);
    for (int i = 1; i < n; ++i) {
      if (names_[i] == name) return i;
    }
    if (n >= N) return 0;
    names_[n] = std::string(name);  // published by the release store below
    count_.store(n + 1, std::memory_order_release);
    return n;
  }
  int size() const { return count_.load(std::memory_order_acquire); }
  const std::string& name(int i) const { return names_[i]; }

 private:
  std::array<std::string, N> names_;
  std::atomic<int> count_{0};
  std::mutex mu_;
};

class DecisionMetrics : public DecisionObserver {
 public:
  static constexpr int kMaxActions = 32;  // 5 bits of the series key
  static constexpr int kMaxArchs = 15;    // 4 bits; 0 is "no slot"
  static constexpr int kMaxBackends = 16;
  static constexpr int kSlotsPerContainer = 256;
  static constexpr int kMaxSeriesPerContainer = 192;  // 75% load
  static constexpr int kShards = 16;
  // Upper bounds of the latency buckets, nanoseconds (+Inf is implicit).
  static constexpr std::array<int64_t, 14> kLatencyBucketsNs = {
      1000,   2500,   5000,    10000,   25000,    50000,     100000,
      250000, 500000, 1000000, 5000000, 10000000, 100000000, 1000000000};

  struct Options {
    size_t max_series = 10000;
    absl::Duration removed_grace = absl::Minutes(5);
  };

  explicit DecisionMetrics(Options opts);
  DecisionMetrics() : DecisionMetrics(Options{}) {}
  ~DecisionMetrics() override;

  void OnDecision(const DecisionRecord& r) override;
  void OnContainerAdded(const ContainerInfo& info) override;
  void OnContainerRemoved(const ContainerInfo& info, const std::string& reason) override;

  // Appends every family this observer owns (see deploy/README.md#metrics).
  // Also drops series of containers removed longer than removed_grace ago.
  void Collect(std::string* out);

  // For tests: live (container, syscall, action) series, and a sweep with a
  // chosen clock.
  size_t series_count() const { return series_.load(); }
  void SweepForTest(absl::Time now) { Sweep(now); }

 private:
  struct Slot {
    std::atomic<uint32_t> key{0};
    std::atomic<uint64_t> count{0};
  };
  struct Series;  // one container
  struct alignas(64) Shard {
    std::atomic<uint64_t> latency_buckets[kLatencyBucketsNs.size() + 1] = {};
    std::atomic<uint64_t> latency_sum_ns{0};
    std::atomic<uint64_t> backend[kMaxBackends] = {};
    std::atomic<uint64_t> unattributed[kMaxActions] = {};
    std::atomic<uint64_t> limit_hits{0};
  };

  Series* FindSeries(const ContainerInfo* c);
  Series* FindSeriesSlow(const ContainerInfo* c);
  void Count(Series* s, uint32_t key, int action, Shard& shard);
  uint32_t Key(uint32_t arch, int nr, int action);
  void Sweep(absl::Time now);
  void BumpGeneration();
  Shard& MyShard();

  const Options opts_;
  InternTable<kMaxActions> actions_;
  InternTable<kMaxBackends> backends_;
  std::array<std::atomic<uint32_t>, kMaxArchs + 1> archs_{};  // slot -> AUDIT_ARCH, 0 = free
  std::mutex arch_mu_;

  std::unique_ptr<Shard[]> shards_;
  std::atomic<size_t> series_{0};  // claimed slots over every container
  std::atomic<uint64_t> generation_;
  std::atomic<int64_t> active_{0};
  std::atomic<uint64_t> added_{0};
  std::atomic<uint64_t> removed_{0};

  std::mutex mu_;  // guards the maps below; never taken on a cache hit
  std::unordered_map<const ContainerInfo*, Series*> by_info_;  // live and in grace
  std::vector<std::unique_ptr<Series>> owned_;                 // everything linked
  // Unlinked series, freed at the sweep after next (a reader holds a
  // series pointer for nanoseconds after checking the generation).
  std::vector<std::pair<absl::Time, std::unique_ptr<Series>>> graveyard_;
};

}  // namespace seccomp_agent::metrics

#endif  // SECCOMP_AGENT_METRICS_DECISION_METRICS_H_
