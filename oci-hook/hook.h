// seccomp-agent-hook's command line, as a function tests can call:
//
//   seccomp-agent-hook [--config=PATH] [--quiet] MODE
//
// MODE precreate: config.json on stdin -> the new config.json on stdout
//   (see precreate.h). Used from hooks.d with "stages": ["precreate"].
// MODE createRuntime (or prestart): the OCI state on stdin; tells the agent
//   {"op":"createRuntime",...} on the hook socket (hook_protocol.h).
// MODE poststop: the OCI state on stdin; tells the agent {"op":"poststop"}.
//
// Exit 0 on success; 1 with one clear "seccomp-agent-hook: ..." line on
// stderr on any error, and then NOTHING on stdout: the output is built in
// memory and written once at the very end. 2 for usage errors.
// If the agent is down (connect fails or no reply within hook_timeout_ms,
// default 2 s; for precreate: its socket is missing), on_agent_down decides:
// fail -> exit 1; pass -> exit 0 with a WARNING on stderr (precreate then
// passes config.json through unchanged).
#ifndef SECCOMP_AGENT_OCI_HOOK_HOOK_H_
#define SECCOMP_AGENT_OCI_HOOK_HOOK_H_

#include <string>
#include <vector>

#include "oci-hook/precreate.h"

namespace seccomp_agent::hook {

struct HookIo {
  std::string in;   // all of stdin
  std::string out;  // written to stdout by main() only when the exit code is 0
  std::string err;  // stderr lines
};

// Seams for tests; the defaults read policy files and check real sockets.
struct HookEnv {
  PolicyLoader loader;  // empty: FilePolicyLoader(config.policy_dir)
  AgentProbe probe;     // empty: SocketExists
};

// `args` excludes argv[0].
int RunHook(const std::vector<std::string>& args, HookIo& io, const HookEnv& env = {});

}  // namespace seccomp_agent::hook

#endif  // SECCOMP_AGENT_OCI_HOOK_HOOK_H_
