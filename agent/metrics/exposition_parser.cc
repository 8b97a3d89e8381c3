#include "agent/metrics/exposition_parser.h"

#include <cmath>
#include <cstdlib>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "re2/re2.h"

namespace seccomp_agent::metrics {

namespace {

bool IsMetricName(const std::string& s) {
  static const re2::RE2 re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return re2::RE2::FullMatch(s, re);
}

bool IsLabelName(const std::string& s) {
  static const re2::RE2 re("[a-zA-Z_][a-zA-Z0-9_]*");
  return re2::RE2::FullMatch(s, re);
}

absl::StatusOr<double> ParseValue(const std::string& s) {
  if (s == "+Inf") return INFINITY;
  if (s == "-Inf") return -INFINITY;
  if (s == "NaN") return NAN;
  double d;
  if (!absl::SimpleAtod(s, &d)) return absl::InvalidArgumentError(absl::StrCat("bad value ", s));
  return d;
}

// Parses `{a="x",b="y"}` starting at s[*pos] == '{'.
absl::Status ParseLabels(const std::string& s, size_t* pos,
                         std::map<std::string, std::string>* out) {
  size_t i = *pos + 1;
  while (i < s.size() && s[i] != '}') {
    size_t eq = s.find('=', i);
    if (eq == std::string::npos) return absl::InvalidArgumentError("label without =");
    std::string key = s.substr(i, eq - i);
    if (!IsLabelName(key)) {
      return absl::InvalidArgumentError(absl::StrCat("bad label name '", key, "'"));
    }
    i = eq + 1;
    if (i >= s.size() || s[i] != '"') return absl::InvalidArgumentError("label value not quoted");
    ++i;
    std::string val;
    while (i < s.size() && s[i] != '"') {
      if (s[i] == '\\') {
        if (i + 1 >= s.size()) return absl::InvalidArgumentError("dangling escape");
        char n = s[i + 1];
        if (n == 'n') {
          val += '\n';
        } else if (n == '\\' || n == '"') {
          val += n;
        } else {
          return absl::InvalidArgumentError(absl::StrCat("bad escape \\", std::string(1, n)));
        }
        i += 2;
      } else {
        val += s[i++];
      }
    }
    if (i >= s.size()) return absl::InvalidArgumentError("unterminated label value");
    ++i;  // closing quote
    if (out->count(key)) return absl::InvalidArgumentError(absl::StrCat("duplicate label ", key));
    (*out)[key] = val;
    if (i < s.size() && s[i] == ',') ++i;
  }
  if (i >= s.size()) return absl::InvalidArgumentError("unterminated label set");
  *pos = i + 1;
  return absl::OkStatus();
}

std::string FamilyOf(const std::string& sample, const std::map<std::string, Family>& fams) {
  if (fams.count(sample)) return sample;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string sfx = suffix;
    if (sample.size() > sfx.size() &&
        sample.compare(sample.size() - sfx.size(), sfx.size(), sfx) == 0) {
      std::string base = sample.substr(0, sample.size() - sfx.size());
      auto it = fams.find(base);
      if (it != fams.end() && it->second.type == "histogram") return base;
    }
  }
  return "";
}

absl::Status CheckHistogram(const Family& f) {
  // Group by labels other than le.
  std::map<std::string, std::vector<std::pair<double, double>>> buckets;
  std::map<std::string, double> counts;
  std::set<std::string> sums;
  for (const Sample& s : f.samples) {
    std::map<std::string, std::string> rest = s.labels;
    std::string le;
    if (s.name == f.name + "_bucket") {
      auto it = rest.find("le");
      if (it == rest.end()) return absl::InvalidArgumentError(f.name + ": bucket without le");
      le = it->second;
      rest.erase(it);
    }
    std::string key = absl::StrJoin(rest, ",", absl::PairFormatter("="));
    if (s.name == f.name + "_bucket") {
      absl::StatusOr<double> b = ParseValue(le);
      if (!b.ok()) return b.status();
      buckets[key].push_back({*b, s.value});
    } else if (s.name == f.name + "_count") {
      counts[key] = s.value;
    } else if (s.name == f.name + "_sum") {
      sums.insert(key);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(f.name, ": stray sample ", s.name));
    }
  }
  for (const auto& [key, bs] : buckets) {
    for (size_t i = 1; i < bs.size(); ++i) {
      if (!(bs[i].first > bs[i - 1].first)) {
        return absl::InvalidArgumentError(f.name + ": bucket bounds not increasing");
      }
      if (bs[i].second < bs[i - 1].second) {
        return absl::InvalidArgumentError(f.name + ": buckets not cumulative");
      }
    }
    if (bs.empty() || !std::isinf(bs.back().first)) {
      return absl::InvalidArgumentError(f.name + ": no +Inf bucket");
    }
    if (!counts.count(key) || counts[key] != bs.back().second) {
      return absl::InvalidArgumentError(f.name + ": _count differs from the +Inf bucket");
    }
    if (!sums.count(key)) return absl::InvalidArgumentError(f.name + ": no _sum");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<double> Exposition::Value(const std::string& name,
                                         const std::map<std::string, std::string>& labels) const {
  for (const auto& [fname, f] : families) {
    for (const Sample& s : f.samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
  }
  return absl::NotFoundError(absl::StrCat(
      "no sample ", name, "{", absl::StrJoin(labels, ",", absl::PairFormatter("=")), "}"));
}

absl::StatusOr<Exposition> ParseExposition(const std::string& text) {
  Exposition e;
  std::string current;           // family whose samples we are in
  std::set<std::string> closed;  // families that ended (must not reappear)
  std::set<std::string> seen_series;
  if (!text.empty() && text.back() != '\n') return absl::InvalidArgumentError("no final newline");
  int lineno = 0;
  for (absl::string_view lv : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++lineno;
    std::string line(lv);
    auto err = [&](const std::string& m) {
      return absl::InvalidArgumentError(absl::StrCat("line ", lineno, ": ", m, ": ", line));
    };
    if (line[0] == '#') {
      std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() < 3 || (parts[1] != "HELP" && parts[1] != "TYPE")) continue;  // comment
      const std::string& name = parts[2];
      if (!IsMetricName(name)) return err("bad metric name");
      if (name != current) {
        if (!current.empty()) closed.insert(current);
        if (closed.count(name)) return err("family appears twice");
        current = name;
      }
      Family& f = e.families[name];
      f.name = name;
      if (parts[1] == "HELP") {
        if (!f.help.empty()) return err("second HELP");
        f.help = parts.size() > 3 ? parts[3] : "";
      } else {
        if (!f.type.empty()) return err("second TYPE");
        if (!f.samples.empty()) return err("TYPE after samples");
        f.type = parts.size() > 3 ? parts[3] : "";
        if (f.type != "counter" && f.type != "gauge" && f.type != "histogram" &&
            f.type != "summary" && f.type != "untyped") {
          return err("bad type");
        }
      }
      continue;
    }
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    Sample s;
    s.name = line.substr(0, i);
    if (!IsMetricName(s.name)) return err("bad sample name");
    if (i < line.size() && line[i] == '{') {
      if (absl::Status st = ParseLabels(line, &i, &s.labels); !st.ok())
        return err(std::string(st.message()));
    }
    if (i >= line.size() || line[i] != ' ') return err("no value");
    std::vector<std::string> rest = absl::StrSplit(line.substr(i + 1), ' ');
    if (rest.empty() || rest.size() > 2) return err("bad value/timestamp");
    absl::StatusOr<double> v = ParseValue(rest[0]);
    if (!v.ok()) return err(std::string(v.status().message()));
    s.value = *v;
    std::string fam = FamilyOf(s.name, e.families);
    if (fam.empty()) return err("sample without HELP/TYPE");
    if (fam != current) return err("sample outside its family's block");
    Family& f = e.families[fam];
    if (f.type.empty() || f.help.empty()) return err("family lacks HELP or TYPE");
    if (f.type == "counter" && s.value < 0) return err("negative counter");
    std::string series =
        s.name + "{" + absl::StrJoin(s.labels, ",", absl::PairFormatter("=")) + "}";
    if (!seen_series.insert(series).second) return err("duplicate series");
    f.samples.push_back(std::move(s));
  }
  for (const auto& [name, f] : e.families) {
    if (f.type.empty() || f.help.empty())
      return absl::InvalidArgumentError(name + ": no HELP/TYPE");
    if (f.type == "histogram") {
      if (absl::Status s = CheckHistogram(f); !s.ok()) return s;
    }
  }
  return e;
}

}  // namespace seccomp_agent::metrics
