// Workaround for grpc++ 1.51 (see grpc_pin.cc).
#ifndef SECCOMP_AGENT_PLUGIN_GRPC_PIN_H_
#define SECCOMP_AGENT_PLUGIN_GRPC_PIN_H_

namespace seccomp_agent::plugin {

// Keeps grpc's process-wide callback completion queue alive for the rest of
// the process. Idempotent; call before the first callback RPC.
void PinCallbackCompletionQueue();

}  // namespace seccomp_agent::plugin

#endif  // SECCOMP_AGENT_PLUGIN_GRPC_PIN_H_
