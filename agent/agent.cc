#include "agent/agent.h"

#include <fcntl.h>
#include <systemd/sd-daemon.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/log.h"
#include "agent/common/status.h"
#include "agent/holder/holder.h"
#include "agent/metrics/exposition.h"
#include "agent/metrics/handoff_metrics.h"
#include "agent/metrics/rate_limit_metrics.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent {
namespace {

// systemd socket activation: the listening handoff socket passed as fd 3
// (seccomp-agent.socket), or -1 when not socket-activated. `passed`: the
// LISTEN_FDS fds other than the fd store's (holder::SplitFdStoreEntries).
absl::StatusOr<int> ActivatedSocket(std::vector<holder::NamedFd>& passed) {
  int n = static_cast<int>(passed.size());
  if (n <= 0) return -1;
  if (n > 1) spdlog::warn("socket activation passed {} fds; using the first", n);
  int fd = passed[0].fd.release();
  if (sd_is_socket_unix(fd, SOCK_STREAM, /*listening=*/1, nullptr, 0) <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket activation: fd ", fd, " is not a listening AF_UNIX SOCK_STREAM socket"));
  }
  return fd;
}

absl::Status Prefixed(const char* what, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

void WritePluginMetrics(const std::vector<plugin::PluginStats>& stats, std::string* out) {
  using metrics::AppendLabel;
  using metrics::WriteHeader;
  using metrics::WriteSample;
  WriteHeader(out, "seccomp_agent_plugin_calls_total", "Plugin decisions asked for.", "counter");
  for (const auto& st : stats) {
    std::string l;
    AppendLabel(&l, "plugin", st.name);
    WriteSample(out, "seccomp_agent_plugin_calls_total", l, st.calls);
  }
  WriteHeader(out, "seccomp_agent_plugin_errors_total",
              "Plugin calls that produced no decision, by kind (on_error applied).", "counter");
  for (const auto& st : stats) {
    for (int k = 1; k < plugin::kNumErrorKinds; ++k) {
      std::string l;
      AppendLabel(&l, "plugin", st.name);
      AppendLabel(&l, "kind", plugin::ErrorKindName(static_cast<plugin::ErrorKind>(k)));
      WriteSample(out, "seccomp_agent_plugin_errors_total", l, st.errors[k]);
    }
  }
  WriteHeader(out, "seccomp_agent_plugin_cache_hits_total",
              "Plugin decisions served from the cache.", "counter");
  for (const auto& st : stats) {
    std::string l;
    AppendLabel(&l, "plugin", st.name);
    WriteSample(out, "seccomp_agent_plugin_cache_hits_total", l, st.cache_hits);
  }
}

void WriteDecisionLogMetrics(const DecisionLog& log, std::string* out) {
  using metrics::WriteHeader;
  using metrics::WriteSample;
  WriteHeader(out, "seccomp_agent_decision_log_dropped_total",
              "Decision log lines dropped (rate limit, failed write or rotation).", "counter");
  WriteSample(out, "seccomp_agent_decision_log_dropped_total", "", log.dropped_lines());
  WriteHeader(out, "seccomp_agent_decision_log_rotations_total", "Decision log files rotated.",
              "counter");
  WriteSample(out, "seccomp_agent_decision_log_rotations_total", "", log.rotations());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(Config config) {
  std::unique_ptr<Agent> a(new Agent(std::move(config)));
  SA_RETURN_IF_ERROR(a->LoadPolicy());
  SA_RETURN_IF_ERROR(a->OpenDecisionLog());
  a->OpenHolder();
  SA_RETURN_IF_ERROR(a->StartPlugins());
  SA_RETURN_IF_ERROR(a->StartEngine());
  SA_RETURN_IF_ERROR(a->StartHandoff());
  SA_RETURN_IF_ERROR(a->StartHookSocket());
  SA_RETURN_IF_ERROR(a->StartAdmin());
  SA_RETURN_IF_ERROR(a->StartMetrics());
  // systemd Type=notify: ready once every socket serves.
  sd_notify(0, "READY=1\nSTATUS=serving");
  return a;
}

Agent::~Agent() {
  sd_notify(0, "STOPPING=1");
  serving_ = false;
  if (admin_) admin_->SetServing(false);
  // The members stop in reverse order of declaration.
}

absl::Status Agent::LoadPolicy() {
  if (config_.policy_path.empty()) {
    policy_ = CompiledPolicy::BuiltinDefault();
    return absl::OkStatus();
  }
  auto p = CompiledPolicy::LoadFile(config_.policy_path);
  if (!p.ok()) return Prefixed("cannot load policy", p.status());
  policy_ = *std::move(p);
  return absl::OkStatus();
}

absl::Status Agent::OpenDecisionLog() {
  if (config_.decision_log.empty()) return absl::OkStatus();
  SA_ASSIGN_OR_RETURN(decisions_, DecisionLog::Open(config_.decision_log, config_.decision_log_options));
  return absl::OkStatus();
}

// The holder (restart without losing containers). LISTEN_FDS carries the
// socket unit's socket and, in fd-store mode, the stored containers: split
// by name.
void Agent::OpenHolder() {
  listen_fds_ = holder::TakeListenFds();
  std::vector<holder::NamedFd> stored = holder::SplitFdStoreEntries(&listen_fds_);
  holder::HolderMode mode =
      holder::ResolveHolderMode(config_.holder_mode, config_.holder_socket_flag, !stored.empty());
  holder_sync_ = std::make_unique<holder::EngineSync>(
      holder::OpenListenerStore(mode, config_.holder_socket, std::move(stored)));
}

// Substitutions (the backend is probed on the first listener and logged)
// and the gRPC policy plugins the policy declares (asynchronous: a slow or
// hung plugin never blocks a worker; see agent/plugin/dispatcher.h).
absl::Status Agent::StartPlugins() {
  const v1::Policy& proto = policy_->proto();
  injector_ = std::make_unique<injector::Injector>(injector::OptionsFromProto(proto.injection()),
                                                   DefaultUnotify());
  if (proto.plugins_size() > 0) {
    plugin::DispatcherOptions popts;
    popts.redirect_roots.assign(proto.redirect_roots().begin(), proto.redirect_roots().end());
    auto d = plugin::PluginDispatcher::Create({proto.plugins().begin(), proto.plugins().end()},
                                              popts);
    if (!d.ok()) return Prefixed("plugins", d.status());
    plugins_ = *std::move(d);
    for (const auto& p : proto.plugins()) {
      spdlog::info("plugin {} at {} (timeout {} ms, {})", p.name(), p.address(),
                   p.timeout_ms() ? p.timeout_ms() : 100, p.stream() ? "stream" : "unary");
    }
  }
  router_ = std::make_unique<ActionRouter>(DefaultUnotify(), injector_.get(), plugins_.get());
  return absl::OkStatus();
}

// Observers (metrics when --metrics_address, the admin API's decision
// stream when the admin socket is on) go in before Start.
absl::Status Agent::StartEngine() {
  engine_ = std::make_unique<Engine>(config_.engine, DefaultUnotify(), policy_, decisions_.get());
  engine_->SetActionHandler(router_.get());
  if (!config_.metrics_address.empty()) engine_->AddObserver(&decision_metrics_);
  if (!config_.admin_socket.empty()) engine_->AddObserver(&broadcaster_);
  engine_->AddObserver(holder_sync_.get());
  SA_RETURN_IF_ERROR(Prefixed("engine", engine_->Start()));
  holder_sync_->Restore(*engine_);
  return absl::OkStatus();
}

void Agent::OnHandoff(Handoff h) {
  std::string id = h.container.id;
  pid_t pid = h.container.init_pid;
  std::string runtime = h.container.runtime;
  ContainerInfo held_info = h.container;
  UniqueFd held(fcntl(h.listener.get(), F_DUPFD_CLOEXEC, 3));  // the holder's copy
  absl::Status s = engine_->AddContainer(std::move(h.container), std::move(h.listener));
  if (!s.ok()) {
    spdlog::error("container {} not registered: {}", id, std::string(s.message()));
    return;
  }
  if (held) holder_sync_->Store(held_info, held.get());
  spdlog::info("container {} registered: pid {}, runtime {}, peer pid {}", id, pid, runtime,
               h.peer_pid);
}

absl::Status Agent::StartHandoff() {
  HandoffServer::Options hopts;
  hopts.socket_path = config_.socket;
  hopts.allowed_uids = config_.allowed_uids;
  hopts.max_message_bytes = config_.max_message_bytes;
  SA_ASSIGN_OR_RETURN(hopts.adopt_fd, ActivatedSocket(listen_fds_));
  SA_ASSIGN_OR_RETURN(handoff_,
                      HandoffServer::Start(hopts, [this](Handoff h) { OnHandoff(std::move(h)); }));
  spdlog::info("policy {}: {} rules", policy_->source(), policy_->proto().rules_size());
  const std::string uids = absl::StrJoin(config_.allowed_uids, ",");
  if (hopts.adopt_fd >= 0) {
    spdlog::info("serving the socket-activated handoff socket (fd {}) (allowed uids: {})",
                 hopts.adopt_fd, uids);
  } else {
    spdlog::info("listening on {} (allowed uids: {})", hopts.socket_path, uids);
  }
  return absl::OkStatus();
}

absl::Status Agent::StartHookSocket() {
  hook_handler_ = std::make_unique<HookAdminHandler>(*engine_, config_.allowed_uids);
  if (config_.hook_socket.empty()) return absl::OkStatus();
  auto hs = hook::AdminServer::Start(config_.hook_socket, hook_handler_.get());
  if (!hs.ok()) return Prefixed("hook socket", hs.status());
  hook_server_ = *std::move(hs);
  return absl::OkStatus();
}

absl::StatusOr<admin::PolicySummary> Agent::Reload() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  if (config_.policy_path.empty()) {
    return absl::FailedPreconditionError("no --policy file; keeping the built-in policy");
  }
  auto p = CompiledPolicy::LoadFile(config_.policy_path);
  if (!p.ok()) {
    reloads_failed_++;
    spdlog::error("policy reload failed, keeping the previous policy: {}",
                  std::string(p.status().message()));
    return absl::InvalidArgumentError(p.status().message());
  }
  engine_->SetPolicy(*p);
  reloads_ok_++;
  spdlog::info("policy reloaded from {}: {} rules", config_.policy_path,
               (*p)->proto().rules_size());
  return admin::PolicySummary{(*p)->source(), (*p)->proto().rules_size()};
}

absl::Status Agent::StartAdmin() {
  if (config_.admin_socket.empty()) return absl::OkStatus();
  admin::AdminServer::Options aopts;
  aopts.socket_path = config_.admin_socket;
  aopts.allowed_uids = config_.admin_uids;
  aopts.containers = [this] { return engine_->Containers(); };
  aopts.totals = [this] { return engine_->Totals(); };
  aopts.policy = [this] {
    auto p = engine_->policy();
    return admin::PolicySummary{p->source(), p->proto().rules_size()};
  };
  aopts.reload = [this] { return Reload(); };
  aopts.handoff_stats = [this](v1::HandoffStats* out) {
    admin::FillHandoffStats(handoff_->counters(), handoff_->pending_connections(), out);
  };
  aopts.broadcaster = &broadcaster_;
  aopts.healthy = [this] { return engine_->StuckWorkers() == 0; };
  auto a = admin::AdminServer::Start(std::move(aopts));
  if (!a.ok()) return Prefixed("admin socket", a.status());
  admin_ = *std::move(a);
  spdlog::info("admin API on {} (allowed uids: {})", config_.admin_socket,
               absl::StrJoin(config_.admin_uids, ","));
  return absl::OkStatus();
}

// Reloads, the policy in force, and the admin API's own counters.
void Agent::AddAgentMetrics() {
  registry_.AddCollector([this](std::string* out) {
    using metrics::WriteHeader;
    using metrics::WriteSample;
    WriteHeader(out, "seccomp_agent_policy_reloads_total",
                "Policy reloads (SIGHUP or admin API) by result.", "counter");
    WriteSample(out, "seccomp_agent_policy_reloads_total", "result=\"ok\"", reloads_ok_.load());
    WriteSample(out, "seccomp_agent_policy_reloads_total", "result=\"error\"",
                reloads_failed_.load());
    WriteHeader(out, "seccomp_agent_policy_rules", "Rules in the policy in force.", "gauge");
    WriteSample(out, "seccomp_agent_policy_rules", "",
                static_cast<uint64_t>(engine_->policy()->proto().rules_size()));
    if (decisions_) WriteDecisionLogMetrics(*decisions_, out);
    if (!admin_) return;
    WriteHeader(out, "seccomp_agent_admin_connections_rejected_total",
                "Admin socket connections refused by the SO_PEERCRED check.", "counter");
    WriteSample(out, "seccomp_agent_admin_connections_rejected_total", "",
                admin_->rejected_connections());
    WriteHeader(out, "seccomp_agent_watch_events_dropped_total",
                "Decision events dropped for slow admin watchers.", "counter");
    WriteSample(out, "seccomp_agent_watch_events_dropped_total", "",
                broadcaster_.dropped_total());
    WriteHeader(out, "seccomp_agent_watchers", "Open admin decision streams.", "gauge");
    WriteSample(out, "seccomp_agent_watchers", "", broadcaster_.subscribers());
  });
}

absl::Status Agent::StartMetrics() {
  if (config_.metrics_address.empty()) return absl::OkStatus();
  registry_.AddCollector([this](std::string* out) { decision_metrics_.Collect(out); });
  registry_.AddCollector([this](std::string* out) {
    metrics::WriteRateLimitMetrics(engine_->Containers(), engine_->rate_limited_total(), out);
    metrics::WriteEngineTotals(engine_->Totals(), out);
  });
  registry_.AddCollector([this](std::string* out) {
    metrics::WriteHandoffMetrics(handoff_->counters(), handoff_->pending_connections(), out);
  });
  AddAgentMetrics();
  if (plugins_) {
    registry_.AddCollector([this](std::string* out) { WritePluginMetrics(plugins_->Stats(), out); });
  }
  auto m = metrics::HttpServer::Start(config_.metrics_address, &registry_,
                                      [this] {
                                        return serving_.load() && engine_->StuckWorkers() == 0;
                                      });
  if (!m.ok()) return m.status();
  metrics_server_ = *std::move(m);
  spdlog::info("metrics on http://{}/metrics", config_.metrics_address);
  return absl::OkStatus();
}

void Agent::ServeUntilSignal(const sigset_t& signals) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig != SIGHUP) {
      spdlog::info("signal {}: shutting down", sig);
      if (holder_sync_) holder_sync_->OnCleanStop();
      return;
    }
    if (config_.policy_path.empty()) {
      spdlog::info("SIGHUP: no --policy file; keeping the built-in policy");
      continue;
    }
    (void)Reload();  // logs either way
  }
}

sigset_t BlockAgentSignals() {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return sigs;
}

namespace {

int CheckPolicy(const Config& config) {
  absl::StatusOr<std::shared_ptr<const CompiledPolicy>> p = CompiledPolicy::BuiltinDefault();
  if (!config.policy_path.empty()) p = CompiledPolicy::LoadFile(config.policy_path);
  if (!p.ok()) {
    spdlog::critical("cannot load policy: {}", std::string(p.status().message()));
    return 2;
  }
  printf("policy %s: OK, %d rules\n", (*p)->source().c_str(), (*p)->proto().rules_size());
  return 0;
}

}  // namespace

int RunAgentMain(const Config& config) {
  InitLogging(config.log_level);
  if (config.run_holder) return holder::RunHolderMain(config.holder_socket);
  if (config.check_policy) return CheckPolicy(config);
  const sigset_t signals = BlockAgentSignals();
  auto agent = Agent::Start(config);
  if (!agent.ok()) {
    spdlog::critical("{}", std::string(agent.status().message()));
    return agent.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  (*agent)->ServeUntilSignal(signals);
  agent->reset();
  spdlog::info("stopped");
  return 0;
}

}  // namespace seccomp_agent
