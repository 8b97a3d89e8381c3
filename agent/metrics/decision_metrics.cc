#include "agent/metrics/decision_metrics.h"

#include <linux/audit.h>

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "agent/metrics/exposition.h"
#include "agent/seccomp/syscall_names.h"

namespace seccomp_agent::metrics {

namespace {

constexpr uint32_t kNrBits = 22;
constexpr uint32_t kNrUnknown = (1u << kNrBits) - 1;
constexpr uint32_t kX32Bit = 1u << kNrBits;
constexpr uint32_t kArchShift = kNrBits + 1;       // 4 bits
constexpr uint32_t kActionShift = kArchShift + 4;  // 5 bits
constexpr uint32_t kX32SyscallBit = 0x40000000;

// Generations are unique across instances, so a thread's cache can never
// mistake one instance's generation for another's.
std::atomic<uint64_t> g_generations{1};

// Per-thread cache of container -> series, direct mapped.
struct TlsCache {
  const void* owner = nullptr;
  uint64_t generation = 0;
  const ContainerInfo* keys[8] = {};
  void* values[8] = {};
};
thread_local TlsCache t_cache;

std::atomic<int> g_next_shard{0};
thread_local int t_shard = -1;

}  // namespace

struct DecisionMetrics::Series {
  std::string labels;  // container_id=...,namespace=...,pod=...,container=...
  std::atomic<int> used{0};
  Slot slots[kSlotsPerContainer];
  // Guarded by DecisionMetrics::mu_.
  const ContainerInfo* info = nullptr;
  bool confirmed = false;  // OnContainerAdded seen (else created by a decision)
  bool removed = false;
  absl::Time created;
  absl::Time removed_at;
};

DecisionMetrics::DecisionMetrics(Options opts)
    : opts_(opts), shards_(new Shard[kShards]), generation_(g_generations.fetch_add(1)) {
  for (auto& a : archs_) a.store(0);
}

DecisionMetrics::~DecisionMetrics() = default;

DecisionMetrics::Shard& DecisionMetrics::MyShard() {
  if (t_shard < 0) t_shard = g_next_shard.fetch_add(1, std::memory_order_relaxed) % kShards;
  return shards_[t_shard];
}

void DecisionMetrics::BumpGeneration() {
  generation_.store(g_generations.fetch_add(1, std::memory_order_relaxed),
                    std::memory_order_release);
}

uint32_t DecisionMetrics::Key(uint32_t arch, int nr, int action) {
  uint32_t slot = 0;
  for (uint32_t i = 1; i <= kMaxArchs; ++i) {
    uint32_t a = archs_[i].load(std::memory_order_acquire);
    if (a == arch) {
      slot = i;
      break;
    }
    if (a == 0) break;
  }
  if (slot == 0) {
    std::lock_guard<std::mutex> lock(arch_mu_);
    for (uint32_t i = 1; i <= kMaxArchs; ++i) {
      uint32_t a = archs_[i].load(std::memory_order_relaxed);
      if (a == arch || a == 0) {
        if (a == 0) archs_[i].store(arch, std::memory_order_release);
        slot = i;
        break;
      }
    }
    if (slot == 0) return 0;  // more than kMaxArchs architectures: unattributed
  }
  uint32_t n = static_cast<uint32_t>(nr);
  uint32_t x32 = 0;
  if (arch == AUDIT_ARCH_X86_64 && nr >= 0 && (n & kX32SyscallBit)) {
    x32 = kX32Bit;
    n &= ~kX32SyscallBit;
  }
  if (nr < 0 || n >= kNrUnknown) n = kNrUnknown;
  return (static_cast<uint32_t>(action) << kActionShift) | (slot << kArchShift) | x32 | n;
}

DecisionMetrics::Series* DecisionMetrics::FindSeries(const ContainerInfo* c) {
  const uint64_t gen = generation_.load(std::memory_order_acquire);
  TlsCache& t = t_cache;
  if (t.owner != this || t.generation != gen) {
    t.owner = this;
    t.generation = gen;
    std::fill(std::begin(t.keys), std::end(t.keys), nullptr);
  }
  const size_t h = (reinterpret_cast<uintptr_t>(c) >> 6) & 7;
  if (t.keys[h] == c) return static_cast<Series*>(t.values[h]);
  Series* s = FindSeriesSlow(c);
  // Stored under the generation read before the lookup: if it changed since,
  // the next call resets the cache.
  t.keys[h] = c;
  t.values[h] = s;
  return s;
}

DecisionMetrics::Series* DecisionMetrics::FindSeriesSlow(const ContainerInfo* c) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_info_.find(c);
  if (it != by_info_.end()) return it->second;
  // A decision before OnContainerAdded (the engine arms the listener first):
  // create it now; OnContainerAdded confirms it.
  auto s = std::make_unique<Series>();
  AppendLabel(&s->labels, "container_id", c->id);
  AppendLabel(&s->labels, "namespace", c->pod_namespace);
  AppendLabel(&s->labels, "pod", c->pod_name);
  AppendLabel(&s->labels, "container", c->container_name);
  s->info = c;
  s->created = absl::Now();
  Series* raw = s.get();
  by_info_[c] = raw;
  owned_.push_back(std::move(s));
  return raw;
}

void DecisionMetrics::Count(Series* s, uint32_t key, int action, Shard& shard) {
  uint32_t h = (key * 2654435761u) >> 24;  // top 8 bits: kSlotsPerContainer = 256
  for (int i = 0; i < kSlotsPerContainer; ++i) {
    Slot& slot = s->slots[(h + i) & (kSlotsPerContainer - 1)];
    uint32_t k = slot.key.load(std::memory_order_acquire);
    if (k == key) {
      slot.count.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (k != 0) continue;
    // A new series: within both caps?
    if (s->used.load(std::memory_order_relaxed) >= kMaxSeriesPerContainer) break;
    if (series_.load(std::memory_order_relaxed) >= opts_.max_series) break;
    if (series_.fetch_add(1, std::memory_order_relaxed) >= opts_.max_series) {
      series_.fetch_sub(1, std::memory_order_relaxed);
      break;
    }
    uint32_t expected = 0;
    if (slot.key.compare_exchange_strong(expected, key, std::memory_order_acq_rel)) {
      s->used.fetch_add(1, std::memory_order_relaxed);
      slot.count.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    series_.fetch_sub(1, std::memory_order_relaxed);
    if (expected == key) {  // another worker claimed the same key
      slot.count.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  shard.limit_hits.fetch_add(1, std::memory_order_relaxed);
  shard.unattributed[action].fetch_add(1, std::memory_order_relaxed);
}

void DecisionMetrics::OnDecision(const DecisionRecord& r) {
  Shard& shard = MyShard();
  size_t b = 0;
  const int64_t lat = r.latency_ns;
  while (b < kLatencyBucketsNs.size() && lat > kLatencyBucketsNs[b]) ++b;
  shard.latency_buckets[b].fetch_add(1, std::memory_order_relaxed);
  shard.latency_sum_ns.fetch_add(static_cast<uint64_t>(std::max<int64_t>(lat, 0)),
                                 std::memory_order_relaxed);
  if (!r.backend.empty()) {
    shard.backend[backends_.Intern(r.backend)].fetch_add(1, std::memory_order_relaxed);
  }
  const int action = actions_.Intern(r.action);
  const SyscallEvent* ev = r.event;
  uint32_t key = 0;
  Series* s = nullptr;
  if (ev != nullptr && ev->container != nullptr) {
    key = Key(ev->arch, ev->nr, action);
    if (key != 0) s = FindSeries(ev->container);
  }
  if (s == nullptr) {
    shard.unattributed[action].fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Count(s, key, action, shard);
}

void DecisionMetrics::OnContainerAdded(const ContainerInfo& info) {
  added_.fetch_add(1, std::memory_order_relaxed);
  active_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_info_.find(&info);
  if (it != by_info_.end() && !it->second->removed) {
    it->second->confirmed = true;  // created by an early decision
    return;
  }
  if (it != by_info_.end()) by_info_.erase(it);  // address reused; the old one stays in grace
  auto s = std::make_unique<Series>();
  AppendLabel(&s->labels, "container_id", info.id);
  AppendLabel(&s->labels, "namespace", info.pod_namespace);
  AppendLabel(&s->labels, "pod", info.pod_name);
  AppendLabel(&s->labels, "container", info.container_name);
  s->info = &info;
  s->confirmed = true;
  s->created = absl::Now();
  by_info_[&info] = s.get();
  owned_.push_back(std::move(s));
  BumpGeneration();
}

void DecisionMetrics::OnContainerRemoved(const ContainerInfo& info, const std::string&) {
  removed_.fetch_add(1, std::memory_order_relaxed);
  active_.fetch_sub(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_info_.find(&info);
  if (it == by_info_.end()) return;
  it->second->removed = true;
  it->second->removed_at = absl::Now();
}

void DecisionMetrics::Sweep(absl::Time now) {
  // mu_ held by the caller.
  bool unlinked = false;
  for (auto it = owned_.begin(); it != owned_.end();) {
    Series* s = it->get();
    bool expired = (s->removed && now - s->removed_at >= opts_.removed_grace) ||
                   (!s->confirmed && now - s->created >= opts_.removed_grace);
    if (!expired) {
      ++it;
      continue;
    }
    auto m = by_info_.find(s->info);
    if (m != by_info_.end() && m->second == s) by_info_.erase(m);
    series_.fetch_sub(s->used.load(), std::memory_order_relaxed);
    graveyard_.emplace_back(now, std::move(*it));
    it = owned_.erase(it);
    unlinked = true;
  }
  if (unlinked) BumpGeneration();
  // Free what an earlier sweep unlinked (no thread can still be using it:
  // a hit checks the generation nanoseconds before touching the series).
  graveyard_.erase(std::remove_if(graveyard_.begin(), graveyard_.end(),
                                  [&](const auto& g) {
                                    return g.first < now && now - g.first >= opts_.removed_grace;
                                  }),
                   graveyard_.end());
}

void DecisionMetrics::Collect(std::string* out) {
  std::map<std::string, uint64_t> counts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Sweep(absl::Now());
    const int nactions = actions_.size();
    for (const auto& s : owned_) {
      for (const Slot& slot : s->slots) {
        uint32_t key = slot.key.load(std::memory_order_acquire);
        if (key == 0) continue;
        uint64_t c = slot.count.load(std::memory_order_relaxed);
        int action = static_cast<int>(key >> kActionShift);
        uint32_t arch = archs_[(key >> kArchShift) & 0xf].load(std::memory_order_acquire);
        uint32_t n = key & kNrUnknown;
        std::string syscall;
        if (n == kNrUnknown) {
          syscall = "unknown";
        } else {
          int nr = static_cast<int>(n | ((key & kX32Bit) ? kX32SyscallBit : 0));
          syscall = SyscallName(arch, nr);
        }
        std::string labels = s->labels;
        AppendLabel(&labels, "syscall", syscall);
        AppendLabel(&labels, "action", action < nactions ? actions_.name(action) : "other");
        counts[labels] += c;
      }
    }
  }
  WriteHeader(out, "seccomp_agent_notifications_total",
              "Decided seccomp notifications by container, syscall and action.", "counter");
  for (const auto& [labels, c] : counts) {
    WriteSample(out, "seccomp_agent_notifications_total", labels, c);
  }

  uint64_t unattributed[kMaxActions] = {};
  uint64_t limit_hits = 0, lat_sum = 0;
  uint64_t buckets[kLatencyBucketsNs.size() + 1] = {};
  uint64_t backend[kMaxBackends] = {};
  for (int i = 0; i < kShards; ++i) {
    const Shard& sh = shards_[i];
    for (int a = 0; a < kMaxActions; ++a) unattributed[a] += sh.unattributed[a].load();
    for (size_t b = 0; b <= kLatencyBucketsNs.size(); ++b)
      buckets[b] += sh.latency_buckets[b].load();
    for (int k = 0; k < kMaxBackends; ++k) backend[k] += sh.backend[k].load();
    limit_hits += sh.limit_hits.load();
    lat_sum += sh.latency_sum_ns.load();
  }

  WriteHeader(out, "seccomp_agent_notifications_unattributed_total",
              "Decisions not counted per container because a series cap was reached "
              "(or the decision had no container).",
              "counter");
  for (int a = 0; a < actions_.size(); ++a) {
    if (unattributed[a] == 0) continue;
    std::string labels;
    AppendLabel(&labels, "action", actions_.name(a));
    WriteSample(out, "seccomp_agent_notifications_unattributed_total", labels, unattributed[a]);
  }
  WriteHeader(out, "seccomp_agent_notification_series",
              "(container, syscall, action) series currently held.", "gauge");
  WriteSample(out, "seccomp_agent_notification_series", "", series_.load());
  WriteHeader(out, "seccomp_agent_notification_series_max",
              "Cap on (container, syscall, action) series (--metrics_max_series).", "gauge");
  WriteSample(out, "seccomp_agent_notification_series_max", "", opts_.max_series);
  WriteHeader(out, "seccomp_agent_notification_series_limit_hits_total",
              "Decisions that needed a new series beyond a cap.", "counter");
  WriteSample(out, "seccomp_agent_notification_series_limit_hits_total", "", limit_hits);

  // Buckets and sum are read separately, so a scrape racing a decision may
  // see the sum one decision ahead; _count is the +Inf bucket, so the
  // buckets and count always agree.
  WriteHeader(out, "seccomp_agent_decision_latency_seconds",
              "Time from NOTIF_RECV to the reply, per decision.", "histogram");
  uint64_t cum = 0;
  for (size_t b = 0; b < kLatencyBucketsNs.size(); ++b) {
    cum += buckets[b];
    std::string labels;
    AppendLabel(&labels, "le", FormatDouble(kLatencyBucketsNs[b] / 1e9));
    WriteSample(out, "seccomp_agent_decision_latency_seconds_bucket", labels, cum);
  }
  cum += buckets[kLatencyBucketsNs.size()];
  WriteSample(out, "seccomp_agent_decision_latency_seconds_bucket", "le=\"+Inf\"", cum);
  WriteSampleDouble(out, "seccomp_agent_decision_latency_seconds_sum", "", lat_sum / 1e9);
  WriteSample(out, "seccomp_agent_decision_latency_seconds_count", "", cum);

  WriteHeader(out, "seccomp_agent_injector_decisions_total",
              "Decisions carried out by the injector or a plugin, by backend.", "counter");
  for (int k = 0; k < backends_.size(); ++k) {
    if (backend[k] == 0) continue;
    std::string labels;
    AppendLabel(&labels, "backend", backends_.name(k));
    WriteSample(out, "seccomp_agent_injector_decisions_total", labels, backend[k]);
  }

  WriteHeader(out, "seccomp_agent_active_containers", "Containers currently registered.", "gauge");
  WriteSample(out, "seccomp_agent_active_containers", "",
              static_cast<uint64_t>(std::max<int64_t>(active_.load(), 0)));
  WriteHeader(out, "seccomp_agent_containers_added_total", "Containers registered since start.",
              "counter");
  WriteSample(out, "seccomp_agent_containers_added_total", "", added_.load());
  WriteHeader(out, "seccomp_agent_containers_removed_total", "Containers removed since start.",
              "counter");
  WriteSample(out, "seccomp_agent_containers_removed_total", "", removed_.load());
}

}  // namespace seccomp_agent::metrics
