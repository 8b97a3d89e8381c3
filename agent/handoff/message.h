// The runtime's handoff message: the OCI ContainerProcessState that runc and
// crun send to `linux.seccomp.listenerPath` (one JSON value plus the listener
// fd in SCM_RIGHTS). This file holds the pure parts: framing the JSON out of
// a byte stream that may never see EOF, and parsing + validating the message.
// No I/O here; server.h does the sockets.
#ifndef SECCOMP_AGENT_HANDOFF_MESSAGE_H_
#define SECCOMP_AGENT_HANDOFF_MESSAGE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/model/event.h"

namespace seccomp_agent {

// Why a handoff was refused; one counter per value (HandoffCounters).
enum class RejectReason : int {
  kPeerUid = 0,       // SO_PEERCRED uid not in the allowed list
  kMalformedJson,     // not JSON, not an object, too deeply nested, trailing data
  kTooLarge,          // more bytes than the cap before the JSON value ended
  kInvalidMessage,    // valid JSON, wrong shape / missing or mistyped fields
  kFdCount,           // not exactly one fd received
  kFdNames,           // `fds` names do not match the fds received
  kNotListener,       // the fd is not a seccomp user-notification listener
  kControlTruncated,  // MSG_CTRUNC: more ancillary data than we accept
  kClosedEarly,       // EOF before a complete message
  kConnectionError,   // recvmsg failed (ECONNRESET, ...)
  kCount,             // number of values, not a reason
};
inline constexpr int kRejectReasonCount = static_cast<int>(RejectReason::kCount);

// Stable snake_case name, e.g. "peer_uid", for metrics labels.
const char* RejectReasonName(RejectReason r);

// Finds where the first JSON value of a growing buffer ends, without EOF:
// runc and crun send one value and may hold the connection open. Tracks
// bracket depth outside strings (escapes honoured). Only framing: the bytes
// are fully parsed afterwards by ParseRuntimeMessage.
class JsonFramer {
 public:
  enum class State { kNeedMore, kComplete, kError };
  // Deepest nesting accepted; the real message needs 3.
  static constexpr int kMaxDepth = 32;

  // `buf` is the whole buffer so far (it only grows between calls); scanning
  // resumes where the previous call stopped, so the total cost is linear.
  State Scan(absl::string_view buf);
  // One past the closing bracket (valid once kComplete).
  size_t end() const { return end_; }
  // Why (valid once kError).
  const std::string& error() const { return error_; }

 private:
  State state_ = State::kNeedMore;
  size_t pos_ = 0;
  size_t end_ = 0;
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  std::string error_;
};

// Parses and validates one message. `json` is the received bytes (the JSON
// value, optionally followed by whitespace such as crun's newline);
// `fds_received` the number of fds that came with it in SCM_RIGHTS.
//
// Required: ociVersion (string); fds (array of strings, as many names as
// fds received, exactly one fd, named "seccompFd"); pid (integer, 0 < pid <=
// 4194304, the kernel's PID_MAX_LIMIT); state (object) with id (non-empty
// string, at most 1024 bytes, no control characters), pid (integer >= 0),
// bundle (string), status (string). Optional: metadata (string),
// state.ociVersion (string), state.annotations (object of strings). Unknown
// fields are ignored; duplicate keys in any object are refused (two readers
// could otherwise see different values).
//
// ContainerInfo.runtime is a HEURISTIC, for logs only: "crun" when ociVersion
// is "0.2.0" and the JSON is pretty-printed (contains newlines), "runc" when
// ociVersion is "1.0.2-dev" and the JSON is compact, else "unknown". Both
// signals must agree, so another runtime or a newer version reads "unknown"
// rather than a wrong name. Never base a security decision on it.
//
// Kubernetes identity: CRI-O's io.kubernetes.pod.namespace / .pod.name /
// .container.name, else containerd's io.kubernetes.cri.sandbox-namespace /
// .cri.sandbox-name / .cri.container-name; "" when absent.
absl::StatusOr<ContainerInfo> ParseRuntimeMessage(absl::string_view json, size_t fds_received);

// As above; on error also stores the reason in `*reason` (when non-null).
absl::StatusOr<ContainerInfo> ParseRuntimeMessage(absl::string_view json, size_t fds_received,
                                                  RejectReason* reason);

// The runtime heuristic described above.
std::string GuessRuntime(absl::string_view oci_version, bool pretty_printed);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_HANDOFF_MESSAGE_H_
