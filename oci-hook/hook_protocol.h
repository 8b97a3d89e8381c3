// The hook protocol between seccomp-agent-hook (createRuntime / poststop)
// and the agent, on a unix socket separate from the runtimes' listener
// socket (default /run/seccomp-agent/hook.sock, separate from the gRPC admin socket, AF_UNIX
// SOCK_STREAM).
//
// One connection carries one exchange:
//   hook  -> agent: one JSON object on one line, ending in "\n":
//     {"op":"createRuntime"|"poststop","id":"<container id>","pid":<host pid>,
//      "bundle":"<path>","annotations":{"k":"v",...}}
//   agent -> hook:  one line {"ok":true} or {"ok":false,"error":"<text>"}
// The hook waits at most its hook timeout (default 2 s) for connect, send
// and reply. Rules the agent applies (ParseHookRequest):
//   * op: required, "createRuntime" or "poststop" ("prestart", what
//     earlier hooks sent, is read as "createRuntime").
//   * id: required, 1..1024 bytes, no control characters.
//   * pid: integer 0..4194304 (PID_MAX_LIMIT); required and > 0 for
//     createRuntime; optional (0 = unknown) for poststop, where the task is gone.
//   * bundle: optional string; annotations: optional object of strings.
//   * unknown keys are ignored (newer hooks may send more); duplicate keys
//     and lines over kMaxHookLineBytes are refused.
// Peer credentials (SO_PEERCRED) are passed to the handler: the agent
// should accept only uid 0 (the runtime runs hooks as root).
//
// The listener-metadata string the hook writes into config.json is part of
// the same contract: "seccomp-agent.io/policy=NAME".
#ifndef SECCOMP_AGENT_OCI_HOOK_ADMIN_PROTOCOL_H_
#define SECCOMP_AGENT_OCI_HOOK_ADMIN_PROTOCOL_H_

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/fd.h"
#include "agent/common/unix_socket.h"

namespace seccomp_agent::hook {

inline constexpr char kDefaultHookSocket[] = "/run/seccomp-agent/hook.sock";
inline constexpr size_t kMaxHookLineBytes = 64 * 1024;
inline constexpr char kListenerMetadataPrefix[] = "seccomp-agent.io/policy=";

enum class HookOp { kCreateRuntime, kPoststop };
const char* HookOpName(HookOp op);  // "createRuntime" / "poststop"

struct HookRequest {
  HookOp op = HookOp::kCreateRuntime;
  std::string id;
  int64_t pid = 0;
  std::string bundle;
  std::map<std::string, std::string> annotations;
};

// One line (no trailing newline needed; one is accepted) -> request.
absl::StatusOr<HookRequest> ParseHookRequest(absl::string_view line);
// Request -> one line ending in "\n" (compact JSON).
std::string FormatHookRequest(const HookRequest& request);
// {"ok":true}\n, or {"ok":false,"error":"<message>"}\n.
std::string FormatHookReply(const absl::Status& status);
// The reply line -> OkStatus, or the agent's error (FailedPrecondition).
absl::Status ParseHookReply(absl::string_view line);

// "seccomp-agent.io/policy=NAME" and back (nullopt: not ours).
std::string ListenerMetadataFor(absl::string_view policy);
std::optional<std::string> PolicyFromListenerMetadata(absl::string_view metadata);

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};

// What the agent implements: pre-register a container (createRuntime) or drop
// its state (poststop). Called from the server's thread; must be
// thread-safe with respect to the rest of the agent.
class HookHandler {
 public:
  virtual ~HookHandler() = default;
  virtual absl::Status Handle(const HookRequest& request, const PeerCred& peer) = 0;
};

// Serves one accepted connection: reads one line (up to `timeout`),
// parses it, calls the handler, writes the reply. A malformed request is
// answered with ok:false and also returned as the error.
absl::Status ServeHookConnection(int fd, HookHandler& handler, absl::Duration timeout);

// A listening hook socket with one thread accepting and serving
// connections one by one (each bounded by `timeout`). Refuses a socket
// something still answers on (AlreadyExists), replaces a stale one; the
// file is created mode 0600 (UnixListener).
class HookServer {
 public:
  static absl::StatusOr<std::unique_ptr<HookServer>> Start(
      const std::string& path, HookHandler* handler, absl::Duration timeout = absl::Seconds(2));
  ~HookServer();  // stops the thread, unlinks the socket while it is ours
  const std::string& path() const { return listener_.path(); }

 private:
  HookServer() = default;
  void Loop();
  HookHandler* handler_ = nullptr;
  absl::Duration timeout_;
  UnixListener listener_;
  UniqueFd stop_r_, stop_w_;
  std::thread thread_;
};

// The hook's side: connect, send, wait for the reply, all within `timeout`.
// A connect failure or timeout is kUnavailable (the agent is down); a reply
// {"ok":false} is kFailedPrecondition with the agent's message.
absl::Status SendHookRequest(const std::string& socket_path, const HookRequest& request,
                             absl::Duration timeout);

}  // namespace seccomp_agent::hook

#endif  // SECCOMP_AGENT_OCI_HOOK_ADMIN_PROTOCOL_H_
