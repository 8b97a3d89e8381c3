// seccomp-agent: receives containers' seccomp listener fds from runc/crun
// (OCI linux.seccomp.listenerPath) and decides every trapped syscall with a
// policy. See README.md; the flags are in agent/config.cc, the parts in
// agent/agent.h.
#include <cstdio>
#include <string>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "agent/agent.h"
#include "agent/config.h"

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "seccomp-agent [--socket=PATH] [--policy=FILE] [--decision_log=PATH|-] "
      "[--allowed_uids=0,...] [--metrics_address=HOST:PORT] [--admin_socket=PATH] "
      "[--admin_uids=0,...]");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<seccomp_agent::Config> config = seccomp_agent::ConfigFromFlags();
  if (!config.ok()) {
    fprintf(stderr, "seccomp-agent: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  return seccomp_agent::RunAgentMain(*config);
}
