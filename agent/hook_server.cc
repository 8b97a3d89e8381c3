#include "agent/hook_server.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "agent/common/log.h"

namespace seccomp_agent {

absl::Status HookRequestHandler::Handle(const hook::HookRequest& request,
                                        const hook::PeerCred& peer) {
  if (std::find(allowed_uids_.begin(), allowed_uids_.end(), peer.uid) == allowed_uids_.end()) {
    spdlog::warn("hook message refused: peer pid {} uid {} not allowed", peer.pid, peer.uid);
    return absl::PermissionDeniedError(absl::StrCat("uid ", peer.uid, " is not allowed"));
  }
  if (request.op == hook::HookOp::kCreateRuntime) {
    spdlog::info("hook: container {} created (pid {}, bundle {})", request.id, request.pid,
                 request.bundle);
    return absl::OkStatus();
  }
  int n = engine_.RemoveContainer(request.id, "poststop hook");
  spdlog::info("hook: container {} stopped ({} listener(s) dropped)", request.id, n);
  return absl::OkStatus();
}

}  // namespace seccomp_agent
