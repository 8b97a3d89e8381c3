#include "agent/ctl/format.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace seccomp_agent::ctl {

namespace {

std::string Or(const std::string& s, const char* dflt = "-") { return s.empty() ? dflt : s; }

std::string ShortId(const std::string& id, bool wide) {
  return wide || id.size() <= 12 ? id : id.substr(0, 12);
}

std::string FormatLatency(int64_t ns) {
  if (ns < 1000) return absl::StrCat(ns, "ns");
  if (ns < 1000000) return absl::StrFormat("%.1fus", ns / 1e3);
  return absl::StrFormat("%.1fms", ns / 1e6);
}

}  // namespace

std::string FormatPolicy(const v1::PolicyInfo& p) {
  std::string s = p.version() == 0
                      ? std::string("not loaded")
                      : absl::StrCat("v", p.version(), " ", p.source(), " (", p.rules(), " rules)");
  if (!p.error().empty()) absl::StrAppend(&s, "; last load failed: ", p.error());
  return s;
}

std::string RenderTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string FormatAge(int64_t nanos) {
  if (nanos <= 0) return "0s";
  int64_t s = nanos / 1000000000;
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrCat(s / 60, "m");
  if (s < 86400) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

std::string FormatContainers(const v1::ListContainersResponse& r, bool wide) {
  std::vector<std::vector<std::string>> rows = {
      {"CONTAINER", "PID", "RUNTIME", "NAMESPACE", "POD", "NAME", "METADATA", "POLICY", "AGE",
       "NOTIFS", "ALLOW", "DENY", "RETURN", "SUBST", "GONE", "ERR", "LIMITED"}};
  for (const v1::ContainerEntry& c : r.containers()) {
    const v1::ContainerCounters& n = c.counters();
    rows.push_back(
        {ShortId(c.id(), wide), absl::StrCat(c.init_pid()), Or(c.runtime()), Or(c.pod_namespace()),
         Or(c.pod_name()), Or(c.container_name()), Or(c.listener_metadata()), Or(c.policy()),
         FormatAge(r.now_unix_nanos() - c.registered_unix_nanos()), absl::StrCat(n.notifications()),
         absl::StrCat(n.allowed()), absl::StrCat(n.denied()), absl::StrCat(n.returned()),
         absl::StrCat(n.substituted()), absl::StrCat(n.task_gone()), absl::StrCat(n.errors()),
         n.rate_limit() > 0 ? absl::StrCat(n.rate_limited(), " (", n.rate_limit(), "/s)")
                            : std::string("-")});
  }
  return RenderTable(rows);
}

std::string FormatStats(const v1::GetStatsResponse& r) {
  const v1::ContainerCounters& t = r.totals();
  std::vector<std::vector<std::string>> rows = {
      {"uptime", FormatAge(static_cast<int64_t>(r.uptime_seconds() * 1e9))},
      {"policy", absl::StrCat(r.policy().source(), " (", r.policy().rules(), " rules)")},
      {"active containers", absl::StrCat(r.active_containers())},
      {"notifications", absl::StrCat(t.notifications())},
      {"  allowed", absl::StrCat(t.allowed())},
      {"  denied", absl::StrCat(t.denied())},
      {"  returned", absl::StrCat(t.returned())},
      {"  substituted", absl::StrCat(t.substituted())},
      {"  task gone", absl::StrCat(t.task_gone())},
      {"  errors", absl::StrCat(t.errors())},
      {"rate limited", absl::StrCat(t.rate_limited())},
      {"  throttled", absl::StrFormat("%.3f s", t.throttled_seconds())},
      {"handoff connections", absl::StrCat(r.handoff().connections())},
      {"handoffs", absl::StrCat(r.handoff().handoffs())},
      {"handoff pending", absl::StrCat(r.handoff().pending_connections())},
  };
  // Sorted by reason name (proto maps have no order).
  std::vector<std::pair<std::string, uint64_t>> rej(r.handoff().rejected().begin(),
                                                    r.handoff().rejected().end());
  std::sort(rej.begin(), rej.end());
  uint64_t total = 0;
  for (const auto& [k, v] : rej) total += v;
  rows.push_back({"handoff rejected", absl::StrCat(total)});
  for (const auto& [k, v] : rej) {
    if (v != 0) rows.push_back({absl::StrCat("  ", k), absl::StrCat(v)});
  }
  for (const v1::PolicyInfo& p : r.policies()) {
    rows.push_back({absl::StrCat("  policy ", p.name()), FormatPolicy(p)});
  }
  rows.push_back({"watchers", absl::StrCat(r.watchers())});
  rows.push_back({"watch events dropped", absl::StrCat(r.watch_events_dropped())});
  rows.push_back({"admin connections rejected", absl::StrCat(r.admin_connections_rejected())});
  for (auto& row : rows) row[0] += ":";
  return RenderTable(rows);
}

std::string WatchHeader() {
  return absl::StrFormat("%-15s  %-12s  %-30s  %-7s  %-12s  %-14s  %-10s  %-16s  %9s  %s\n", "TIME",
                         "CONTAINER", "POD", "PID", "SYSCALL", "ACTION", "RESULT", "RULE",
                         "LATENCY", "PATH");
}

std::string FormatWatchEvent(const v1::WatchDecisionsResponse& r, bool wide) {
  if (r.has_dropped()) {
    return absl::StrCat("!! ", r.dropped().count(),
                        " events dropped (this watcher read too slowly)\n");
  }
  const v1::DecisionEvent& d = r.decision();
  std::string pod = d.pod_name().empty() ? "-" : absl::StrCat(d.pod_namespace(), "/", d.pod_name());
  if (!d.container_name().empty()) absl::StrAppend(&pod, "/", d.container_name());
  std::string action = d.action();
  if (!d.backend().empty()) absl::StrAppend(&action, "(", d.backend(), ")");
  return absl::StrFormat(
      "%-15s  %-12s  %-30s  %-7d  %-12s  %-14s  %-10s  %-16s  %9s  %s\n",
      absl::FormatTime("%H:%M:%E6S", absl::FromUnixNanos(d.time_unix_nanos()), absl::UTCTimeZone()),
      ShortId(d.container_id(), wide), pod, d.pid(), d.syscall(), action, d.result(), d.rule(),
      FormatLatency(d.latency_nanos()), Or(d.path(), ""));
}

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  o.add_whitespace = false;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

}  // namespace seccomp_agent::ctl
