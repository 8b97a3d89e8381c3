#include "agent/metrics/registry.h"

namespace seccomp_agent::metrics {

void Registry::AddCollector(Collector c) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(c));
}

std::string Registry::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out.reserve(16 * 1024);
  for (const Collector& c : collectors_) c(&out);
  return out;
}

}  // namespace seccomp_agent::metrics
