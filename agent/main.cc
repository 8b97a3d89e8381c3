// seccomp-agent: receives containers' seccomp listener fds from runc/crun
// (OCI linux.seccomp.listenerPath) and decides every trapped syscall with a
// policy. See README.md.
#include <fcntl.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "agent/admin/admin_server.h"
#include "agent/admin/broadcaster.h"
#include "agent/common/log.h"
#include "agent/common/status.h"
#include "agent/engine/decision_log.h"
#include "agent/engine/action_router.h"
#include "agent/engine/engine.h"
#include "agent/handoff/server.h"
#include "agent/hook_admin.h"
#include "agent/holder/engine_sync.h"
#include "agent/holder/holder.h"
#include "agent/injector/injector.h"
#include "agent/plugin/dispatcher.h"
#include "agent/metrics/decision_metrics.h"
#include "agent/metrics/exposition.h"
#include "agent/metrics/handoff_metrics.h"
#include "agent/metrics/http_server.h"
#include "agent/metrics/rate_limit_metrics.h"
#include "agent/metrics/registry.h"
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
ABSL_FLAG(std::string, holder_socket, "",
          "Listener-fd holder socket (keeps containers across agent restarts; started if not "
          "running). Empty: holder.sock next to --socket; \"none\": no holder.");
ABSL_FLAG(bool, holder, false, "Run as the listener-fd holder on --holder_socket (internal).");
ABSL_FLAG(std::string, holder_mode, "auto",
          "Where listener copies survive restarts: builtin (the holder process on "
          "--holder_socket), systemd (the service's fd store: sd_notify FDSTORE=1, needs "
          "FileDescriptorStoreMax=), none, or auto: systemd when NOTIFY_SOCKET is set and "
          "--holder_socket is empty (or stored containers came back in LISTEN_FDS), else builtin "
          "(none for --holder_socket=none).");
ABSL_FLAG(std::string, metrics_address, "",
          "Serve Prometheus metrics (GET /metrics) and GET /healthz on host:port, e.g. "
          "127.0.0.1:9464. Empty: no metrics endpoint.");
ABSL_FLAG(uint64_t, metrics_max_series, 10000,
          "Cap on (container, syscall, action) series of seccomp_agent_notifications_total; "
          "beyond it decisions count in seccomp_agent_notifications_unattributed_total.");
ABSL_FLAG(absl::Duration, metrics_removed_grace, absl::Minutes(5),
          "How long a removed container's series stay exported before they are dropped.");
ABSL_FLAG(std::string, admin_socket, "",
          "Admin API socket (AdminService + grpc.health.v1, mode 0600). Empty: admin.sock in the "
          "directory of --socket (/run/seccomp-agent/admin.sock by default). \"none\": no admin "
          "API.");
ABSL_FLAG(std::vector<std::string>, admin_uids, {"0"},
          "Peer uids (SO_PEERCRED) allowed on the admin socket, comma separated.");
ABSL_FLAG(double, container_rate, 0,
          "Per-container rate limit: notifications per second (token bucket). 0: no limit. The "
          "annotation seccomp-agent.io/rate may lower it for one container.");
ABSL_FLAG(double, container_burst, 0,
          "Per-container bucket size (notifications served at once before the rate applies). "
          "0: one second's worth of --container_rate.");
ABSL_FLAG(std::string, rate_limit_action, "delay",
          "At the limit: \"delay\" (stop reading the container's notifications until the bucket "
          "refills; its tasks wait, nothing fails) or \"deny\" (answer --rate_limit_errno).");
ABSL_FLAG(std::string, rate_limit_errno, "EAGAIN",
          "Errno for --rate_limit_action=deny (name or number).");
ABSL_FLAG(absl::Duration, rate_limit_min_park, absl::Milliseconds(10),
          "Delay mode: shortest time a rate-limited container's listener stays parked; the "
          "tokens it gathers meanwhile are served in one go (fewer agent wake-ups, which keeps "
          "the agent prompt for the other containers).");

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

absl::StatusOr<std::vector<uid_t>> ParseUids(const std::vector<std::string>& in,
                                             const char* flag) {
  std::vector<uid_t> uids;
  for (const std::string& s : in) {
    uint32_t u;
    if (!absl::SimpleAtoi(s, &u)) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": \"", s, "\" is not a uid"));
    }
    uids.push_back(u);
  }
  return uids;
}

// systemd socket activation: the listening handoff socket passed as fd 3
// (seccomp-agent.socket), or -1 when not socket-activated. `passed`: the
// LISTEN_FDS fds other than the fd store's (holder::SplitFdStoreEntries).
int ActivatedSocket(std::vector<holder::NamedFd>& passed) {
  int n = static_cast<int>(passed.size());
  if (n <= 0) return -1;
  if (n > 1) spdlog::warn("socket activation passed {} fds; using the first", n);
  int fd = passed[0].fd.release();
  if (sd_is_socket_unix(fd, SOCK_STREAM, /*listening=*/1, nullptr, 0) <= 0) {
    spdlog::critical("socket activation: fd {} is not a listening AF_UNIX SOCK_STREAM socket", fd);
    exit(2);
  }
  return fd;
}

std::string AdminSocketPath(const std::string& flag, const std::string& handoff_socket) {
  if (flag == "none") return "";
  if (!flag.empty()) return flag;
  size_t slash = handoff_socket.rfind('/');
  std::string dir = slash == std::string::npos ? "." : handoff_socket.substr(0, slash);
  return (dir.empty() ? "" : dir) + "/admin.sock";
}

int Run() {
  const std::string policy_path = absl::GetFlag(FLAGS_policy);
  std::shared_ptr<const CompiledPolicy> policy = LoadPolicyOrDie(policy_path);
  if (absl::GetFlag(FLAGS_check_policy)) {
    printf("policy %s: OK, %d rules\n", policy->source().c_str(), policy->proto().rules_size());
    return 0;
  }

  auto parsed_uids = ParseUids(absl::GetFlag(FLAGS_allowed_uids), "--allowed_uids");
  auto admin_uids = ParseUids(absl::GetFlag(FLAGS_admin_uids), "--admin_uids");
  for (const auto* st : {&parsed_uids, &admin_uids}) {
    if (!st->ok()) {
      spdlog::critical("{}", std::string(st->status().message()));
      return 2;
    }
  }
  std::vector<uid_t> uids = *parsed_uids;

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

  // The holder (issue: restart without losing containers): declared before
  // the engine so it outlives it. LISTEN_FDS carries the socket unit's
  // socket and, in fd-store mode, the stored containers: split by name.
  std::vector<holder::NamedFd> listen_fds = holder::TakeListenFds();
  std::vector<holder::NamedFd> stored = holder::SplitFdStoreEntries(&listen_fds);
  auto holder_mode = holder::ParseHolderMode(absl::GetFlag(FLAGS_holder_mode));
  if (!holder_mode.ok()) {
    spdlog::critical("{}", std::string(holder_mode.status().message()));
    return 2;
  }
  holder::EngineSync holder_sync(holder::OpenListenerStore(
      holder::ResolveHolderMode(*holder_mode, absl::GetFlag(FLAGS_holder_socket), !stored.empty()),
      holder::HolderSocketPath(absl::GetFlag(FLAGS_holder_socket), absl::GetFlag(FLAGS_socket)),
      std::move(stored)));
  EngineOptions eopts;
  eopts.workers = absl::GetFlag(FLAGS_workers);
  eopts.container_rate = absl::GetFlag(FLAGS_container_rate);
  eopts.container_burst = absl::GetFlag(FLAGS_container_burst);
  if (!(eopts.container_rate >= 0) || !(eopts.container_burst >= 0)) {
    spdlog::critical("--container_rate and --container_burst must be >= 0");
    return 2;
  }
  if (absl::GetFlag(FLAGS_rate_limit_action) == "deny") {
    eopts.rate_limit_action = RateLimitAction::kDeny;
  } else if (absl::GetFlag(FLAGS_rate_limit_action) != "delay") {
    spdlog::critical("--rate_limit_action must be delay or deny, not {}",
                     absl::GetFlag(FLAGS_rate_limit_action));
    return 2;
  }
  eopts.rate_limit_min_park_ns =
      std::max<int64_t>(0, absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_rate_limit_min_park)));
  eopts.rate_limit_errno = ErrnoFromString(absl::GetFlag(FLAGS_rate_limit_errno));
  if (eopts.rate_limit_errno < 0) {
    spdlog::critical("--rate_limit_errno: unknown errno {}", absl::GetFlag(FLAGS_rate_limit_errno));
    return 2;
  }
  // Substitutions: the backend is probed on the first listener and logged.
  injector::Injector inj(injector::OptionsFromProto(policy->proto().injection()), DefaultUnotify());
  // gRPC policy plugins declared in the policy (asynchronous: a slow or
  // hung plugin never blocks a worker; see agent/plugin/dispatcher.h).
  std::unique_ptr<plugin::PluginDispatcher> plugins;
  if (policy->proto().plugins_size() > 0) {
    plugin::DispatcherOptions popts;
    popts.redirect_roots.assign(policy->proto().redirect_roots().begin(),
                                policy->proto().redirect_roots().end());
    auto d = plugin::PluginDispatcher::Create(
        {policy->proto().plugins().begin(), policy->proto().plugins().end()}, popts);
    if (!d.ok()) {
      spdlog::critical("plugins: {}", std::string(d.status().message()));
      return 2;
    }
    plugins = std::move(*d);
    for (const auto& p : policy->proto().plugins()) {
      spdlog::info("plugin {} at {} (timeout {} ms, {})", p.name(), p.address(),
                   p.timeout_ms() ? p.timeout_ms() : 100, p.stream() ? "stream" : "unary");
    }
  }
  ActionRouter router(DefaultUnotify(), &inj, plugins.get());
  Engine engine(eopts, DefaultUnotify(), policy, decisions.get());
  engine.SetActionHandler(&router);

  // Observability: metrics (when --metrics_address) and the admin API's
  // decision stream (when the admin socket is on). Observers go in before
  // Start.
  const std::string metrics_address = absl::GetFlag(FLAGS_metrics_address);
  const std::string admin_path =
      AdminSocketPath(absl::GetFlag(FLAGS_admin_socket), absl::GetFlag(FLAGS_socket));
  metrics::DecisionMetrics::Options mopts;
  mopts.max_series = absl::GetFlag(FLAGS_metrics_max_series);
  mopts.removed_grace = absl::GetFlag(FLAGS_metrics_removed_grace);
  metrics::DecisionMetrics decision_metrics(mopts);
  admin::Broadcaster broadcaster;
  if (!metrics_address.empty()) engine.AddObserver(&decision_metrics);
  if (!admin_path.empty()) engine.AddObserver(&broadcaster);
  engine.AddObserver(&holder_sync);
  if (absl::Status s = engine.Start(); !s.ok()) {
    spdlog::critical("engine: {}", std::string(s.message()));
    return 1;
  }
  holder_sync.Restore(engine);

  HandoffServer::Options hopts;
  hopts.socket_path = absl::GetFlag(FLAGS_socket);
  hopts.allowed_uids = uids;
  hopts.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  hopts.adopt_fd = ActivatedSocket(listen_fds);
  auto server = HandoffServer::Start(hopts, [&engine, &holder_sync](Handoff h) {
    std::string id = h.container.id;
    pid_t pid = h.container.init_pid;
    std::string runtime = h.container.runtime;
    ContainerInfo held_info = h.container;
    UniqueFd held(fcntl(h.listener.get(), F_DUPFD_CLOEXEC, 3));  // the holder's copy
    absl::Status s = engine.AddContainer(std::move(h.container), std::move(h.listener));
    if (!s.ok()) {
      spdlog::error("container {} not registered: {}", id, std::string(s.message()));
      return;
    }
    if (held) holder_sync.Store(held_info, held.get());
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
  if (hopts.adopt_fd >= 0) {
    spdlog::info("serving the socket-activated handoff socket (fd {}) (allowed uids: {})",
                 hopts.adopt_fd, absl::StrJoin(uids, ","));
  } else {
    spdlog::info("listening on {} (allowed uids: {})", hopts.socket_path, absl::StrJoin(uids, ","));
  }

  // Policy reload: SIGHUP and the admin API share it. A file that does not
  // load keeps the previous policy.
  std::mutex reload_mu;
  std::atomic<uint64_t> reloads_ok{0}, reloads_failed{0};
  auto reload = [&]() -> absl::StatusOr<admin::PolicySummary> {
    std::lock_guard<std::mutex> lock(reload_mu);
    if (policy_path.empty()) {
      return absl::FailedPreconditionError("no --policy file; keeping the built-in policy");
    }
    auto p = CompiledPolicy::LoadFile(policy_path);
    if (!p.ok()) {
      reloads_failed++;
      spdlog::error("policy reload failed, keeping the previous policy: {}",
                    std::string(p.status().message()));
      return absl::InvalidArgumentError(p.status().message());
    }
    engine.SetPolicy(*p);
    reloads_ok++;
    spdlog::info("policy reloaded from {}: {} rules", policy_path, (*p)->proto().rules_size());
    return admin::PolicySummary{(*p)->source(), (*p)->proto().rules_size()};
  };

  std::unique_ptr<admin::AdminServer> admin_server;
  if (!admin_path.empty()) {
    admin::AdminServer::Options aopts;
    aopts.socket_path = admin_path;
    aopts.allowed_uids = *admin_uids;
    aopts.containers = [&engine] { return engine.Containers(); };
    aopts.policy = [&engine] {
      auto p = engine.policy();
      return admin::PolicySummary{p->source(), p->proto().rules_size()};
    };
    aopts.reload = reload;
    HandoffServer* hs = server->get();
    aopts.handoff_stats = [hs](v1::HandoffStats* out) {
      admin::FillHandoffStats(hs->counters(), hs->pending_connections(), out);
    };
    aopts.broadcaster = &broadcaster;
    auto a = admin::AdminServer::Start(std::move(aopts));
    if (!a.ok()) {
      spdlog::critical("admin socket: {}", std::string(a.status().message()));
      return 1;
    }
    admin_server = std::move(*a);
    spdlog::info("admin API on {} (allowed uids: {})", admin_path,
                 absl::StrJoin(*admin_uids, ","));
  }

  std::atomic<bool> serving{true};
  metrics::Registry registry;
  std::unique_ptr<metrics::HttpServer> metrics_server;
  if (!metrics_address.empty()) {
    registry.AddCollector([&decision_metrics](std::string* out) { decision_metrics.Collect(out); });
    registry.AddCollector([&engine](std::string* out) {
      metrics::WriteRateLimitMetrics(engine.Containers(), engine.rate_limited_total(), out);
    });
    HandoffServer* hs = server->get();
    registry.AddCollector([hs](std::string* out) {
      metrics::WriteHandoffMetrics(hs->counters(), hs->pending_connections(), out);
    });
    registry.AddCollector([&](std::string* out) {
      using metrics::WriteHeader;
      using metrics::WriteSample;
      WriteHeader(out, "seccomp_agent_policy_reloads_total",
                  "Policy reloads (SIGHUP or admin API) by result.", "counter");
      WriteSample(out, "seccomp_agent_policy_reloads_total", "result=\"ok\"", reloads_ok.load());
      WriteSample(out, "seccomp_agent_policy_reloads_total", "result=\"error\"",
                  reloads_failed.load());
      WriteHeader(out, "seccomp_agent_policy_rules", "Rules in the policy in force.", "gauge");
      WriteSample(out, "seccomp_agent_policy_rules", "",
                  static_cast<uint64_t>(engine.policy()->proto().rules_size()));
      if (admin_server) {
        WriteHeader(out, "seccomp_agent_admin_connections_rejected_total",
                    "Admin socket connections refused by the SO_PEERCRED check.", "counter");
        WriteSample(out, "seccomp_agent_admin_connections_rejected_total", "",
                    admin_server->rejected_connections());
        WriteHeader(out, "seccomp_agent_watch_events_dropped_total",
                    "Decision events dropped for slow admin watchers.", "counter");
        WriteSample(out, "seccomp_agent_watch_events_dropped_total", "",
                    broadcaster.dropped_total());
        WriteHeader(out, "seccomp_agent_watchers", "Open admin decision streams.", "gauge");
        WriteSample(out, "seccomp_agent_watchers", "", broadcaster.subscribers());
      }
    });
    if (plugins) {
      plugin::PluginDispatcher* pd = plugins.get();
      registry.AddCollector([pd](std::string* out) {
        using metrics::WriteHeader;
        using metrics::WriteSample;
        std::vector<plugin::PluginStats> stats = pd->Stats();
        WriteHeader(out, "seccomp_agent_plugin_calls_total", "Plugin decisions asked for.", "counter");
        for (const auto& st : stats) {
          std::string l;
          metrics::AppendLabel(&l, "plugin", st.name);
          WriteSample(out, "seccomp_agent_plugin_calls_total", l, st.calls);
        }
        WriteHeader(out, "seccomp_agent_plugin_errors_total",
                    "Plugin calls that produced no decision, by kind (on_error applied).", "counter");
        for (const auto& st : stats) {
          for (int k = 1; k < plugin::kNumErrorKinds; ++k) {
            std::string l;
            metrics::AppendLabel(&l, "plugin", st.name);
            metrics::AppendLabel(&l, "kind", plugin::ErrorKindName(static_cast<plugin::ErrorKind>(k)));
            WriteSample(out, "seccomp_agent_plugin_errors_total", l, st.errors[k]);
          }
        }
        WriteHeader(out, "seccomp_agent_plugin_cache_hits_total", "Plugin decisions served from the cache.",
                    "counter");
        for (const auto& st : stats) {
          std::string l;
          metrics::AppendLabel(&l, "plugin", st.name);
          WriteSample(out, "seccomp_agent_plugin_cache_hits_total", l, st.cache_hits);
        }
      });
    }
    auto m = metrics::HttpServer::Start(metrics_address, &registry,
                                        [&serving] { return serving.load(); });
    if (!m.ok()) {
      spdlog::critical("{}", std::string(m.status().message()));
      return 1;
    }
    metrics_server = std::move(*m);
    spdlog::info("metrics on http://{}/metrics", metrics_address);
  }

  // systemd Type=notify: ready once every socket serves.
  sd_notify(0, "READY=1\nSTATUS=serving");

  for (;;) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (policy_path.empty()) {
        spdlog::info("SIGHUP: no --policy file; keeping the built-in policy");
        continue;
      }
      (void)reload();  // logs either way
      continue;
    }
    spdlog::info("signal {}: shutting down", sig);
    break;
  }
  sd_notify(0, "STOPPING=1");
  serving = false;
  if (admin_server) admin_server->SetServing(false);
  metrics_server.reset();
  admin_server.reset();
  server->reset();
  hook_server.reset();
  // Pending plugin calls complete (kShutdown -> on_error) into a live engine.
  plugins.reset();
  engine.Stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace
}  // namespace seccomp_agent

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "seccomp-agent [--socket=PATH] [--policy=FILE] [--decision_log=PATH|-] "
      "[--allowed_uids=0,...] [--metrics_address=HOST:PORT] [--admin_socket=PATH] "
      "[--admin_uids=0,...]");
  absl::ParseCommandLine(argc, argv);
  seccomp_agent::InitLogging(absl::GetFlag(FLAGS_log_level));
  if (absl::GetFlag(FLAGS_holder)) {
    return seccomp_agent::holder::RunHolderMain(seccomp_agent::holder::HolderSocketPath(
        absl::GetFlag(FLAGS_holder_socket), absl::GetFlag(FLAGS_socket)));
  }
  return seccomp_agent::Run();
}
