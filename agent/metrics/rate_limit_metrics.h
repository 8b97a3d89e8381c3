// Per-container rate limit metrics (EngineOptions::container_rate): how often
// each container hit its limit and how long it was held back. Written at
// scrape time from Engine::Containers(); nothing on the hot path.
#ifndef SECCOMP_AGENT_METRICS_RATE_LIMIT_METRICS_H_
#define SECCOMP_AGENT_METRICS_RATE_LIMIT_METRICS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "agent/engine/engine.h"

namespace seccomp_agent::metrics {

// Appends
//   seccomp_agent_rate_limited_total                      (every container ever)
//   seccomp_agent_container_rate_limit{container_id,...}  (notifications/s in force)
//   seccomp_agent_container_rate_limited_total{...}       (hits: parks or denials)
//   seccomp_agent_container_throttled_seconds_total{...}  (delay mode: time parked)
// The per-container families list only live containers that have a limit.
void WriteRateLimitMetrics(const std::vector<ContainerSnapshot>& containers,
                           uint64_t rate_limited_total, std::string* out);

// Appends seccomp_agent_decisions_total{effect=allowed|denied|returned|
// substituted|task_gone}: what the engine's replies did, over every container
// served since start (Engine::Totals): a counter that never goes down when
// containers exit, whoever decided (a local rule or a plugin).
void WriteEngineTotals(const EngineTotals& totals, std::string* out);

}  // namespace seccomp_agent::metrics

#endif  // SECCOMP_AGENT_METRICS_RATE_LIMIT_METRICS_H_
