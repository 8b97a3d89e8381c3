#include "agent/metrics/rate_limit_metrics.h"

#include "absl/strings/str_cat.h"
#include "agent/metrics/exposition.h"

namespace seccomp_agent::metrics {

namespace {

std::string Labels(const ContainerInfo& c) {
  std::string l;
  AppendLabel(&l, "container_id", c.id);
  AppendLabel(&l, "namespace", c.pod_namespace);
  AppendLabel(&l, "pod", c.pod_name);
  AppendLabel(&l, "container", c.container_name);
  return l;
}

}  // namespace

void WriteRateLimitMetrics(const std::vector<ContainerSnapshot>& containers,
                           uint64_t rate_limited_total, std::string* out) {
  WriteHeader(out, "seccomp_agent_rate_limited_total",
              "Rate limit hits over every container, removed ones included.", "counter");
  WriteSample(out, "seccomp_agent_rate_limited_total", "", rate_limited_total);

  std::vector<std::pair<std::string, const ContainerSnapshot*>> limited;
  for (const ContainerSnapshot& c : containers) {
    if (c.rate > 0) limited.emplace_back(Labels(c.info), &c);
  }
  WriteHeader(out, "seccomp_agent_container_rate_limit",
              "Notifications per second a container may cause (token bucket rate).", "gauge");
  for (const auto& [l, c] : limited) {
    WriteSampleDouble(out, "seccomp_agent_container_rate_limit", l, c->rate);
  }
  WriteHeader(out, "seccomp_agent_container_rate_limited_total",
              "Times a container hit its rate limit: listener parked (delay) or notification "
              "denied (deny).",
              "counter");
  for (const auto& [l, c] : limited) {
    WriteSample(out, "seccomp_agent_container_rate_limited_total", l, c->rate_limited);
  }
  WriteHeader(out, "seccomp_agent_container_throttled_seconds_total",
              "Time a container's notifications were held back by its rate limit (delay).",
              "counter");
  for (const auto& [l, c] : limited) {
    WriteSampleDouble(out, "seccomp_agent_container_throttled_seconds_total", l,
                      static_cast<double>(c->throttled_ns) * 1e-9);
  }
}

void WriteEngineTotals(const EngineTotals& t, std::string* out) {
  WriteHeader(out, "seccomp_agent_decisions_total",
              "Replies by what they did, over every container since start.", "counter");
  const std::pair<const char*, uint64_t> rows[] = {{"allowed", t.allowed},
                                                   {"denied", t.denied},
                                                   {"returned", t.returned},
                                                   {"substituted", t.substituted},
                                                   {"task_gone", t.task_gone}};
  for (const auto& [effect, n] : rows) {
    WriteSample(out, "seccomp_agent_decisions_total", absl::StrCat("effect=\"", effect, "\""), n);
  }
}

}  // namespace seccomp_agent::metrics
