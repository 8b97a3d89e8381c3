#include "agent/metrics/handoff_metrics.h"

#include "agent/handoff/message.h"
#include "agent/metrics/exposition.h"

namespace seccomp_agent::metrics {

void WriteHandoffMetrics(const HandoffCounters& c, size_t pending, std::string* out) {
  WriteHeader(out, "seccomp_agent_handoff_connections_total",
              "Connections accepted on the runtime handoff socket.", "counter");
  WriteSample(out, "seccomp_agent_handoff_connections_total", "", c.connections.load());
  WriteHeader(out, "seccomp_agent_handoffs_total",
              "Container listener fds received and handed to the engine.", "counter");
  WriteSample(out, "seccomp_agent_handoffs_total", "", c.handoffs.load());
  WriteHeader(out, "seccomp_agent_handoff_rejections_total", "Refused runtime handoffs by reason.",
              "counter");
  for (int i = 0; i < kRejectReasonCount; ++i) {
    std::string labels;
    AppendLabel(&labels, "reason", RejectReasonName(static_cast<RejectReason>(i)));
    WriteSample(out, "seccomp_agent_handoff_rejections_total", labels, c.rejected[i].load());
  }
  WriteHeader(out, "seccomp_agent_handoff_evicted_total",
              "Pending handoff connections closed because too many were pending.", "counter");
  WriteSample(out, "seccomp_agent_handoff_evicted_total", "", c.evicted_pending.load());
  WriteHeader(out, "seccomp_agent_handoff_idle_dropped_total",
              "Handoff connections closed after the idle limit without a message.", "counter");
  WriteSample(out, "seccomp_agent_handoff_idle_dropped_total", "", c.dropped_idle.load());
  WriteHeader(out, "seccomp_agent_handoff_pending_connections",
              "Handoff connections waiting for a complete message.", "gauge");
  WriteSample(out, "seccomp_agent_handoff_pending_connections", "", pending);
}

}  // namespace seccomp_agent::metrics
