// The agent's metrics registry: an ordered list of collectors, each of which
// appends complete metric families (HELP, TYPE and samples; see
// exposition.h) to the scrape body. Collectors run only at scrape time, on
// the HTTP server's thread, one scrape at a time.
//
// Other parts of the agent plug in their own counters with AddCollector, e.g.
// the plugin dispatcher's error counters:
//   registry.AddCollector([&d](std::string* out) { d.WriteMetrics(out); });
// Each metric name must come from exactly one collector.
#ifndef SECCOMP_AGENT_METRICS_REGISTRY_H_
#define SECCOMP_AGENT_METRICS_REGISTRY_H_

#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace seccomp_agent::metrics {

class Registry {
 public:
  using Collector = std::function<void(std::string* out)>;

  // Thread-safe; may be called while scrapes run. The collector must stay
  // callable for the registry's lifetime.
  void AddCollector(Collector c);

  // The whole exposition body: every collector's output, in the order they
  // were added.
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::vector<Collector> collectors_;
};

}  // namespace seccomp_agent::metrics

#endif  // SECCOMP_AGENT_METRICS_REGISTRY_H_
