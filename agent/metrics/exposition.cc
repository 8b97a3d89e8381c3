#include "agent/metrics/exposition.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace seccomp_agent::metrics {

namespace {

std::string EscapeHelp(absl::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string EscapeLabelValue(absl::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // %.17g round-trips; try shorter first for readable output.
  for (int prec = 6; prec <= 17; ++prec) {
    snprintf(buf, sizeof(buf), "%.*g", prec, v);
    if (strtod(buf, nullptr) == v) break;
  }
  return buf;
}

void WriteHeader(std::string* out, absl::string_view name, absl::string_view help,
                 absl::string_view type) {
  absl::StrAppend(out, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ", type, "\n");
}

void AppendLabel(std::string* labels, absl::string_view key, absl::string_view value) {
  absl::StrAppend(labels, labels->empty() ? "" : ",", key, "=\"", EscapeLabelValue(value), "\"");
}

void WriteSample(std::string* out, absl::string_view name, absl::string_view labels,
                 uint64_t value) {
  if (labels.empty()) {
    absl::StrAppend(out, name, " ", value, "\n");
  } else {
    absl::StrAppend(out, name, "{", labels, "} ", value, "\n");
  }
}

void WriteSampleDouble(std::string* out, absl::string_view name, absl::string_view labels,
                       double value) {
  if (labels.empty()) {
    absl::StrAppend(out, name, " ", FormatDouble(value), "\n");
  } else {
    absl::StrAppend(out, name, "{", labels, "} ", FormatDouble(value), "\n");
  }
}

}  // namespace seccomp_agent::metrics
