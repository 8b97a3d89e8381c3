#include "agent/metrics/rate_limit_metrics.h"

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

}  // namespace seccomp_agent::metrics
