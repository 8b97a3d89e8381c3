#include "agent/handoff/message.h"

#include <cstdint>
#include <exception>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent {
namespace {

using nlohmann::json;

constexpr int64_t kPidMaxLimit = 4194304;  // PID_MAX_LIMIT on 64-bit kernels
constexpr size_t kMaxIdBytes = 1024;

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A failure with its reason; converted to a Status at the end.
struct Failure {
  RejectReason reason;
  std::string message;
};

Failure Invalid(std::string message) {
  return Failure{RejectReason::kInvalidMessage, std::move(message)};
}

// Returns the integer value of `v` if it is an integer number.
bool GetInteger(const json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  return false;
}

bool HasControlChars(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// Looks up the first annotation of `keys` that is present.
std::string FirstAnnotation(const std::map<std::string, std::string>& annotations,
                            std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = annotations.find(k);
    if (it != annotations.end()) return it->second;
  }
  return "";
}

// Parses with duplicate-key detection. Throws nlohmann exceptions (caught by
// the caller).
json ParseStrict(absl::string_view text, std::string* duplicate_key) {
  std::vector<std::set<std::string>> open_objects;
  json::parser_callback_t cb = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string() &&
            !open_objects.back().insert(parsed.get<std::string>()).second &&
            duplicate_key->empty()) {
          *duplicate_key = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  return json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                     /*ignore_comments=*/false);
}

// fds: the names of the fds, in SCM_RIGHTS order, exactly one seccompFd.
std::optional<Failure> CheckFdNames(const json& j, size_t fds_received) {
  auto it = j.find("fds");
  if (it == j.end()) return Invalid("missing field fds");
  if (!it->is_array()) return Invalid("field fds is not an array");
  size_t seccomp_names = 0;
  for (const json& name : *it) {
    if (!name.is_string()) return Invalid("field fds holds a non-string");
    if (name.get<std::string>() == "seccompFd") ++seccomp_names;
  }
  if (it->size() != fds_received) {
    return Failure{RejectReason::kFdNames, absl::StrCat("fds names ", it->size(), " fd(s) but ",
                                                        fds_received, " fd(s) were received")};
  }
  if (seccomp_names != 1) {
    return Failure{RejectReason::kFdNames,
                   absl::StrCat("fds must name exactly one \"seccompFd\", found ", seccomp_names,
                                ": ", it->dump())};
  }
  return std::nullopt;
}

// The OCI state: what the agent keeps of it goes into *info (id, bundle,
// annotations); the other required fields are only checked.
std::optional<Failure> ReadState(const json& state, ContainerInfo* info) {
  auto sit = state.find("id");
  if (sit == state.end()) return Invalid("missing field state.id");
  if (!sit->is_string()) return Invalid("field state.id is not a string");
  std::string id = sit->get<std::string>();
  if (id.empty()) return Invalid("field state.id is empty");
  if (id.size() > kMaxIdBytes) return Invalid("field state.id is longer than 1024 bytes");
  if (HasControlChars(id)) return Invalid("field state.id contains control characters");

  sit = state.find("pid");
  if (sit == state.end()) return Invalid("missing field state.pid");
  int64_t state_pid = 0;
  if (!GetInteger(*sit, &state_pid)) return Invalid("field state.pid is not an integer");
  if (state_pid < 0 || state_pid > kPidMaxLimit) {
    return Invalid(absl::StrCat("field state.pid out of range: ", state_pid));
  }

  sit = state.find("bundle");
  if (sit == state.end()) return Invalid("missing field state.bundle");
  if (!sit->is_string()) return Invalid("field state.bundle is not a string");
  std::string bundle = sit->get<std::string>();

  sit = state.find("status");
  if (sit == state.end()) return Invalid("missing field state.status");
  if (!sit->is_string()) return Invalid("field state.status is not a string");

  sit = state.find("ociVersion");
  if (sit != state.end() && !sit->is_string()) {
    return Invalid("field state.ociVersion is not a string");
  }

  std::map<std::string, std::string> annotations;
  sit = state.find("annotations");
  if (sit != state.end()) {
    if (!sit->is_object()) return Invalid("field state.annotations is not an object");
    for (const auto& [key, value] : sit->items()) {
      if (!value.is_string()) {
        return Invalid(absl::StrCat("annotation \"", key, "\" is not a string"));
      }
      annotations.emplace(key, value.get<std::string>());
    }
  }
  info->id = std::move(id);
  info->bundle = std::move(bundle);
  info->pod_namespace = FirstAnnotation(
      annotations, {"io.kubernetes.pod.namespace", "io.kubernetes.cri.sandbox-namespace"});
  info->pod_name =
      FirstAnnotation(annotations, {"io.kubernetes.pod.name", "io.kubernetes.cri.sandbox-name"});
  info->container_name = FirstAnnotation(
      annotations, {"io.kubernetes.container.name", "io.kubernetes.cri.container-name"});
  info->annotations = std::move(annotations);
  return std::nullopt;
}

std::optional<Failure> Validate(absl::string_view text, size_t fds_received, ContainerInfo* out) {
  json j;
  std::string duplicate_key;
  try {
    j = ParseStrict(text, &duplicate_key);
  } catch (const json::exception& e) {
    return Failure{RejectReason::kMalformedJson, absl::StrCat("not valid JSON: ", e.what())};
  }
  if (!j.is_object()) {
    return Failure{RejectReason::kMalformedJson, "JSON value is not an object"};
  }
  if (!duplicate_key.empty()) {
    return Invalid(absl::StrCat("duplicate key \"", duplicate_key, "\""));
  }
  if (fds_received != 1) {
    return Failure{RejectReason::kFdCount,
                   absl::StrCat("expected exactly 1 fd in SCM_RIGHTS, received ", fds_received)};
  }

  auto it = j.find("ociVersion");
  if (it == j.end()) return Invalid("missing field ociVersion");
  if (!it->is_string()) return Invalid("field ociVersion is not a string");
  const std::string oci_version = it->get<std::string>();

  if (auto f = CheckFdNames(j, fds_received)) return f;

  it = j.find("pid");
  if (it == j.end()) return Invalid("missing field pid");
  int64_t pid = 0;
  if (!GetInteger(*it, &pid)) return Invalid("field pid is not an integer");
  if (pid <= 0 || pid > kPidMaxLimit) return Invalid(absl::StrCat("field pid out of range: ", pid));

  std::string metadata;  // optional
  it = j.find("metadata");
  if (it != j.end()) {
    if (!it->is_string()) return Invalid("field metadata is not a string");
    metadata = it->get<std::string>();
  }

  it = j.find("state");
  if (it == j.end()) return Invalid("missing field state");
  if (!it->is_object()) return Invalid("field state is not an object");
  ContainerInfo info;
  if (auto f = ReadState(*it, &info)) return f;

  // Compact vs pretty: valid JSON cannot hold a raw newline inside a string,
  // so any newline before the trailing whitespace is formatting.
  absl::string_view body = text;
  while (!body.empty() && IsJsonSpace(body.back())) body.remove_suffix(1);
  const bool pretty = body.find('\n') != absl::string_view::npos;

  info.init_pid = static_cast<pid_t>(pid);
  info.metadata = std::move(metadata);
  info.runtime = GuessRuntime(oci_version, pretty);
  *out = std::move(info);
  return std::nullopt;
}

}  // namespace

const char* RejectReasonName(RejectReason r) {
  switch (r) {
    case RejectReason::kPeerUid:
      return "peer_uid";
    case RejectReason::kMalformedJson:
      return "malformed_json";
    case RejectReason::kTooLarge:
      return "too_large";
    case RejectReason::kInvalidMessage:
      return "invalid_message";
    case RejectReason::kFdCount:
      return "fd_count";
    case RejectReason::kFdNames:
      return "fd_names";
    case RejectReason::kNotListener:
      return "not_listener";
    case RejectReason::kControlTruncated:
      return "control_truncated";
    case RejectReason::kClosedEarly:
      return "closed_early";
    case RejectReason::kConnectionError:
      return "connection_error";
    case RejectReason::kCount:
      break;
  }
  return "unknown";
}

JsonFramer::State JsonFramer::Scan(absl::string_view buf) {
  if (state_ != State::kNeedMore) return state_;
  for (; pos_ < buf.size(); ++pos_) {
    const char c = buf[pos_];
    if (depth_ == 0) {
      // Before the value: only whitespace, then '{'.
      if (IsJsonSpace(c)) continue;
      if (c != '{') {
        error_ = "message does not start with a JSON object";
        return state_ = State::kError;
      }
      depth_ = 1;
      continue;
    }
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string_ = true;
        break;
      case '{':
      case '[':
        if (++depth_ > kMaxDepth) {
          error_ = absl::StrCat("JSON nested deeper than ", kMaxDepth, " levels");
          return state_ = State::kError;
        }
        break;
      case '}':
      case ']':
        if (--depth_ == 0) {
          end_ = ++pos_;
          return state_ = State::kComplete;
        }
        break;
      default:
        break;
    }
  }
  return state_;
}

absl::StatusOr<ContainerInfo> ParseRuntimeMessage(absl::string_view json, size_t fds_received) {
  return ParseRuntimeMessage(json, fds_received, nullptr);
}

absl::StatusOr<ContainerInfo> ParseRuntimeMessage(absl::string_view json, size_t fds_received,
                                                  RejectReason* reason) {
  ContainerInfo info;
  std::optional<Failure> failure;
  try {
    failure = Validate(json, fds_received, &info);
  } catch (const std::exception& e) {
    // Validate checks every type before reading it; this is a safety net so
    // no exception crosses the module edge.
    failure = Failure{RejectReason::kInvalidMessage, absl::StrCat("invalid message: ", e.what())};
  }
  if (failure) {
    if (reason != nullptr) *reason = failure->reason;
    return absl::InvalidArgumentError(failure->message);
  }
  return info;
}

std::string GuessRuntime(absl::string_view oci_version, bool pretty_printed) {
  if (oci_version == "0.2.0" && pretty_printed) return "crun";
  if (oci_version == "1.0.2-dev" && !pretty_printed) return "runc";
  return "unknown";
}

}  // namespace seccomp_agent
