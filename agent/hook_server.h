// The agent's side of the OCI hook's createRuntime/poststop messages
// (oci-hook/hook_protocol.h), served on --hook_socket.
#ifndef SECCOMP_AGENT_HOOK_SERVER_H_
#define SECCOMP_AGENT_HOOK_SERVER_H_

#include <vector>

#include "agent/engine/engine.h"
#include "oci-hook/hook_protocol.h"

namespace seccomp_agent {

// createRuntime: logged (the runtime's handoff carries the same identity and
// registers the container); poststop: the container is dropped at once,
// without waiting for its listener to hang up. Only allowed uids may speak.
class HookRequestHandler : public hook::HookHandler {
 public:
  HookRequestHandler(Engine& engine, std::vector<uid_t> allowed_uids)
      : engine_(engine), allowed_uids_(std::move(allowed_uids)) {}
  absl::Status Handle(const hook::HookRequest& request, const hook::PeerCred& peer) override;

 private:
  Engine& engine_;
  std::vector<uid_t> allowed_uids_;
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_HOOK_SERVER_H_
