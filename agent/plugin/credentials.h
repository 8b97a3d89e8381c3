// The channel credentials of one plugin's address.
#ifndef SECCOMP_AGENT_PLUGIN_CREDENTIALS_H_
#define SECCOMP_AGENT_PLUGIN_CREDENTIALS_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/seccompagent/v1/policy.pb.h"

namespace seccomp_agent::plugin {

// unix:// addresses: plaintext (the socket file's mode and the peer's
// uid are the access control; `tls` is refused there). host:port: TLS
// verified against tls.ca_file, with a client certificate for mTLS
// (tls.cert_file + tls.key_file); the files are re-read every `refresh`,
// so a rotated certificate (cert-manager) is used by the next connection
// without a restart. Plaintext TCP only with `insecure: true`. The files
// must be readable now: a typo fails the policy load, not the first call.
// `args` gets tls.server_name as the name checked in the server's
// certificate, when set.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> PluginCredentials(
    const ::seccompagent::v1::PluginConfig& pc, absl::Duration refresh,
    grpc::ChannelArguments* args);

}  // namespace seccomp_agent::plugin

#endif  // SECCOMP_AGENT_PLUGIN_CREDENTIALS_H_
