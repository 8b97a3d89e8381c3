// What seccomp-agentctl prints: aligned tables for people, JSON (the proto3
// JSON mapping, field names as in admin.proto; 64-bit integers are strings)
// for programs.
#ifndef SECCOMP_AGENT_CTL_FORMAT_H_
#define SECCOMP_AGENT_CTL_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "google/protobuf/message.h"
#include "proto/seccompagent/v1/admin.pb.h"

namespace seccomp_agent::ctl {

namespace v1 = ::seccompagent::v1;

// Rows of cells, the first row the header; columns padded to the widest
// cell, separated by two spaces, no trailing blanks.
std::string RenderTable(const std::vector<std::vector<std::string>>& rows);

// "45s", "12m", "3h", "2d" (largest unit, truncated); "0s" for <= 0.
std::string FormatAge(int64_t nanos);

// `list`: one row per container. `wide` keeps full container ids (else 12
// characters, as docker and crictl print them).
std::string FormatContainers(const v1::ListContainersResponse& r, bool wide);
// `stats`: key/value lines.
std::string FormatStats(const v1::GetStatsResponse& r);
// One policy: "v2 /etc/p/a.yaml (3 rules)", plus the last load's error.
std::string FormatPolicy(const v1::PolicyInfo& p);
// `watch`: the header line, and one line per event.
std::string WatchHeader();
std::string FormatWatchEvent(const v1::WatchDecisionsResponse& r, bool wide);

// Compact JSON of a message (one line), every field present.
std::string ToJson(const google::protobuf::Message& m);

}  // namespace seccomp_agent::ctl

#endif  // SECCOMP_AGENT_CTL_FORMAT_H_
