// Helpers that write the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). No C++
// Prometheus client is packaged in Debian; the format is small.
//
// Each metric family is written as
//   # HELP <name> <help>
//   # TYPE <name> counter|gauge|histogram
//   <name>{<label>="<value>",...} <value>
// Label values escape backslash, double quote and newline; HELP text escapes
// backslash and newline.
#ifndef SECCOMP_AGENT_METRICS_EXPOSITION_H_
#define SECCOMP_AGENT_METRICS_EXPOSITION_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace seccomp_agent::metrics {

// The Content-Type of a scrape response.
inline constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// `# HELP` and `# TYPE` lines. `type` is "counter", "gauge" or "histogram".
void WriteHeader(std::string* out, absl::string_view name, absl::string_view help,
                 absl::string_view type);

// Appends `,key="escaped value"` (or without the comma when `*labels` is
// empty) to a label list under construction.
void AppendLabel(std::string* labels, absl::string_view key, absl::string_view value);

// One sample line. `labels` is a list built by AppendLabel ("" for none).
void WriteSample(std::string* out, absl::string_view name, absl::string_view labels,
                 uint64_t value);
void WriteSampleDouble(std::string* out, absl::string_view name, absl::string_view labels,
                       double value);

// Escapes a label value: \ -> \\, " -> \", newline -> \n.
std::string EscapeLabelValue(absl::string_view v);

// Formats a double the way Prometheus parses it (+Inf, -Inf, NaN, shortest
// round-trip decimal otherwise).
std::string FormatDouble(double v);

}  // namespace seccomp_agent::metrics

#endif  // SECCOMP_AGENT_METRICS_EXPOSITION_H_
