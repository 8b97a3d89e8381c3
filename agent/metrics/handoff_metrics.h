// Exposition of the handoff server's counters (HandoffCounters).
#ifndef SECCOMP_AGENT_METRICS_HANDOFF_METRICS_H_
#define SECCOMP_AGENT_METRICS_HANDOFF_METRICS_H_

#include <cstddef>
#include <string>

#include "agent/handoff/server.h"

namespace seccomp_agent::metrics {

// Appends seccomp_agent_handoff_* families: connections, handoffs,
// rejections by reason (every reason, zero or not), evictions, idle drops,
// and the pending connections gauge.
void WriteHandoffMetrics(const HandoffCounters& c, size_t pending, std::string* out);

}  // namespace seccomp_agent::metrics

#endif  // SECCOMP_AGENT_METRICS_HANDOFF_METRICS_H_
