// seccomp-agent: receives containers' seccomp listener fds from runc/crun
// (OCI linux.seccomp.listenerPath) and decides every trapped syscall with a
// policy. See README.md.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "agent/common/log.h"
#include "agent/engine/decision_log.h"
#include "agent/engine/action_router.h"
#include "agent/engine/engine.h"
#include "agent/handoff/server.h"
#include "agent/hook_admin.h"
#include "agent/injector/injector.h"
#include "agent/policy/policy.h"
#include "agent/seccomp/unotify.h"

ABSL_FLAG(std::string, socket, "/run/seccomp-agent/agent.sock",
          "Unix socket the runtime connects to (OCI linux.seccomp.listenerPath). The parent "
          "directory is created; the socket is mode 0600.");
ABSL_FLAG(std::string, policy, "",
          "Policy file (YAML or JSON). Empty: the built-in default policy. SIGHUP reloads it.");
ABSL_FLAG(std::string, decision_log, "",
          "Decision log (JSON lines): a path, or - for stdout. Empty: none.");
ABSL_FLAG(std::vector<std::string>, allowed_uids, {"0"},
          "Peer uids allowed to hand over listener fds (SO_PEERCRED), comma separated.");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error or off.");
ABSL_FLAG(int, workers, 4, "Worker threads deciding notifications.");
ABSL_FLAG(uint64_t, max_message_bytes, 64 * 1024, "Size cap of one runtime message.");
ABSL_FLAG(std::string, hook_socket, "",
          "Socket for the OCI hook's createRuntime/poststop messages (JSON lines, uids of "
          "--allowed_uids). Empty: hook.sock next to --socket; \"none\": no hook socket.");
ABSL_FLAG(bool, check_policy, false, "Validate --policy (or the built-in one), print it, exit.");

namespace seccomp_agent {
namespace {

std::shared_ptr<const CompiledPolicy> LoadPolicyOrDie(const std::string& path) {
  if (path.empty()) return CompiledPolicy::BuiltinDefault();
  auto p = CompiledPolicy::LoadFile(path);
  if (!p.ok()) {
    spdlog::critical("cannot load policy: {}", std::string(p.status().message()));
    exit(2);
  }
  return *p;
}

int Run() {
  const std::string policy_path = absl::GetFlag(FLAGS_policy);
  std::shared_ptr<const CompiledPolicy> policy = LoadPolicyOrDie(policy_path);
  if (absl::GetFlag(FLAGS_check_policy)) {
    printf("policy %s: OK, %d rules\n", policy->source().c_str(), policy->proto().rules_size());
    return 0;
  }

  std::vector<uid_t> uids;
  for (const std::string& s : absl::GetFlag(FLAGS_allowed_uids)) {
    uint32_t u;
    if (!absl::SimpleAtoi(s, &u)) {
      spdlog::critical("--allowed_uids: \"{}\" is not a uid", s);
      return 2;
    }
    uids.push_back(u);
  }

  // Signals are taken synchronously by the main thread; block them before
  // any thread starts so every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<DecisionLog> decisions;
  if (!absl::GetFlag(FLAGS_decision_log).empty()) {
    auto dl = DecisionLog::Open(absl::GetFlag(FLAGS_decision_log));
    if (!dl.ok()) {
      spdlog::critical("{}", std::string(dl.status().message()));
      return 2;
    }
    decisions = std::move(*dl);
  }

  EngineOptions eopts;
  eopts.workers = absl::GetFlag(FLAGS_workers);
  // Substitutions: the backend is probed on the first listener and logged.
  injector::Injector inj(injector::OptionsFromProto(policy->proto().injection()), DefaultUnotify());
  ActionRouter router(DefaultUnotify(), &inj, /*plugins=*/nullptr);
  Engine engine(eopts, DefaultUnotify(), policy, decisions.get());
  engine.SetActionHandler(&router);
  if (absl::Status s = engine.Start(); !s.ok()) {
    spdlog::critical("engine: {}", std::string(s.message()));
    return 1;
  }

  HandoffServer::Options hopts;
  hopts.socket_path = absl::GetFlag(FLAGS_socket);
  hopts.allowed_uids = uids;
  hopts.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  auto server = HandoffServer::Start(hopts, [&engine](Handoff h) {
    std::string id = h.container.id;
    pid_t pid = h.container.init_pid;
    std::string runtime = h.container.runtime;
    absl::Status s = engine.AddContainer(std::move(h.container), std::move(h.listener));
    if (!s.ok()) {
      spdlog::error("container {} not registered: {}", id, std::string(s.message()));
      return;
    }
    spdlog::info("container {} registered: pid {}, runtime {}, peer pid {}", id, pid, runtime,
                 h.peer_pid);
  });
  if (!server.ok()) {
    spdlog::critical("{}", std::string(server.status().message()));
    return 1;
  }
  HookAdminHandler hook_handler(engine, uids);
  std::unique_ptr<hook::AdminServer> hook_server;
  std::string hook_path = absl::GetFlag(FLAGS_hook_socket);
  if (hook_path.empty()) {
    const std::string& sock = hopts.socket_path;
    size_t slash = sock.rfind('/');
    hook_path = (slash == std::string::npos ? std::string(".") : sock.substr(0, slash)) + "/hook.sock";
  }
  if (hook_path != "none") {
    auto hs = hook::AdminServer::Start(hook_path, &hook_handler);
    if (!hs.ok()) {
      spdlog::critical("hook socket: {}", std::string(hs.status().message()));
      return 1;
    }
    hook_server = std::move(*hs);
  }
  spdlog::info("policy {}: {} rules", policy->source(), policy->proto().rules_size());
  spdlog::info("listening on {} (allowed uids: {})", hopts.socket_path, absl::StrJoin(uids, ","));

  for (;;) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (policy_path.empty()) {
        spdlog::info("SIGHUP: no --policy file; keeping the built-in policy");
        continue;
      }
      auto p = CompiledPolicy::LoadFile(policy_path);
      if (!p.ok()) {
        spdlog::error("policy reload failed, keeping the previous policy: {}", std::string(p.status().message()));
        continue;
      }
      engine.SetPolicy(*p);
      spdlog::info("policy reloaded from {}: {} rules", policy_path, (*p)->proto().rules_size());
      continue;
    }
    spdlog::info("signal {}: shutting down", sig);
    break;
  }
  server->reset();
  hook_server.reset();
  engine.Stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace
}  // namespace seccomp_agent

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "seccomp-agent [--socket=PATH] [--policy=FILE] [--decision_log=PATH|-] "
      "[--allowed_uids=0,...]");
  absl::ParseCommandLine(argc, argv);
  seccomp_agent::InitLogging(absl::GetFlag(FLAGS_log_level));
  return seccomp_agent::Run();
}
