// A strict parser of the text exposition format 0.0.4, for tests: it checks
// what a Prometheus server would choke on (sample before its TYPE, a family
// split in two, duplicate series, bad escapes, non-cumulative buckets).
#ifndef SECCOMP_AGENT_METRICS_EXPOSITION_PARSER_H_
#define SECCOMP_AGENT_METRICS_EXPOSITION_PARSER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace seccomp_agent::metrics {

struct Sample {
  std::string name;  // including _bucket/_sum/_count suffixes
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Family {
  std::string name;
  std::string help;
  std::string type;
  std::vector<Sample> samples;
};

struct Exposition {
  std::map<std::string, Family> families;
  // The value of the one sample with this name and exactly these labels.
  absl::StatusOr<double> Value(const std::string& name,
                               const std::map<std::string, std::string>& labels = {}) const;
};

absl::StatusOr<Exposition> ParseExposition(const std::string& text);

}  // namespace seccomp_agent::metrics

#endif  // SECCOMP_AGENT_METRICS_EXPOSITION_PARSER_H_
