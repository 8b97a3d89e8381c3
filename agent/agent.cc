#include "agent/agent.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/log.h"
#include "agent/common/status.h"
#include "agent/engine/substitute_plan.h"
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

void WritePluginMetrics(const std::vector<std::pair<std::string, plugin::PluginStats>>& stats,
                        std::string* out) {
  using metrics::AppendLabel;
  using metrics::WriteHeader;
  using metrics::WriteSample;
  auto labels = [](const std::string& policy, const plugin::PluginStats& st) {
    std::string l;
    AppendLabel(&l, "policy", policy);
    AppendLabel(&l, "plugin", st.name);
    return l;
  };
  WriteHeader(out, "seccomp_agent_plugin_calls_total", "Plugin decisions asked for.", "counter");
  for (const auto& [policy, st] : stats) {
    WriteSample(out, "seccomp_agent_plugin_calls_total", labels(policy, st), st.calls);
  }
  WriteHeader(out, "seccomp_agent_plugin_errors_total",
              "Plugin calls that produced no decision, by kind (on_error applied).", "counter");
  for (const auto& [policy, st] : stats) {
    for (int k = 1; k < plugin::kNumErrorKinds; ++k) {
      std::string l = labels(policy, st);
      AppendLabel(&l, "kind", plugin::ErrorKindName(static_cast<plugin::ErrorKind>(k)));
      WriteSample(out, "seccomp_agent_plugin_errors_total", l, st.errors[k]);
    }
  }
  WriteHeader(out, "seccomp_agent_plugin_cache_hits_total",
              "Plugin decisions served from the cache.", "counter");
  for (const auto& [policy, st] : stats) {
    WriteSample(out, "seccomp_agent_plugin_cache_hits_total", labels(policy, st), st.cache_hits);
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

// Each policy (version, load error) and which policy each container is
// bound to.
void WritePolicyMetrics(const std::vector<PolicyStatus>& policies,
                        const std::vector<ContainerSnapshot>& containers, std::string* out) {
  using metrics::AppendLabel;
  using metrics::WriteHeader;
  using metrics::WriteSample;
  WriteHeader(out, "seccomp_agent_policy_version",
              "Version in force of each policy (0: never loaded).", "gauge");
  for (const PolicyStatus& p : policies) {
    std::string l;
    AppendLabel(&l, "policy", p.name);
    WriteSample(out, "seccomp_agent_policy_version", l, p.version);
  }
  WriteHeader(out, "seccomp_agent_policy_load_failed",
              "1 when the policy's last load failed (its previous version, if any, serves).",
              "gauge");
  for (const PolicyStatus& p : policies) {
    std::string l;
    AppendLabel(&l, "policy", p.name);
    WriteSample(out, "seccomp_agent_policy_load_failed", l, p.error.empty() ? 0 : 1);
  }
  WriteHeader(out, "seccomp_agent_container_policy",
              "The policy (NAME@VERSION) each registered container is decided by.", "gauge");
  for (const ContainerSnapshot& c : containers) {
    std::string l;
    AppendLabel(&l, "container", c.info.id);
    AppendLabel(&l, "policy", c.policy);
    WriteSample(out, "seccomp_agent_container_policy", l, 1);
  }
}

admin::PolicySummary Summary(const PolicyStatus& p) {
  return admin::PolicySummary{p.source, p.rules, p.name, p.version, p.error};
}

}  // namespace

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(Config config) {
  std::unique_ptr<Agent> a(new Agent(std::move(config)));
  SA_RETURN_IF_ERROR(a->LoadPolicies());
  SA_RETURN_IF_ERROR(a->OpenDecisionLog());
  a->OpenHolder();
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
  // Its orphan recovery asks the engine, which stops before it.
  if (holder_sync_) holder_sync_->StopRecovery();
  // The members stop in reverse order of declaration.
}

// The default policy and --policy_dir's, each with its injector, plugins
// (asynchronous: a slow or hung plugin never blocks a worker; see
// agent/plugin/dispatcher.h) and router; then the directory watch.
absl::Status Agent::LoadPolicies() {
  PolicySetOptions o;
  o.default_file = config_.policy_path;
  o.dir = config_.policy_dir;
  o.selectors = config_.selectors;
  o.policy_error_errno = config_.engine.policy_error_errno;
  SA_ASSIGN_OR_RETURN(policies_, PolicySet::Open(std::move(o)));
  return policies_->Watch();
}

absl::Status Agent::OpenDecisionLog() {
  if (config_.decision_log.empty()) return absl::OkStatus();
  SA_ASSIGN_OR_RETURN(decisions_,
                      DecisionLog::Open(config_.decision_log, config_.decision_log_options));
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

// Observers (metrics when --metrics_address, the admin API's decision
// stream when the admin socket is on) go in before Start.
absl::Status Agent::StartEngine() {
  std::shared_ptr<const PolicyBundle> dflt = policies_->Current(kDefaultPolicyName);
  engine_ =
      std::make_unique<Engine>(config_.engine, DefaultUnotify(), dflt->policy, decisions_.get());
  // Every container (handed over or restored) gets its policy's slot, with
  // that version's router, from the binder; the engine's own policy above
  // is never used for a container.
  engine_->SetBinder([this](const ContainerInfo& info) { return policies_->Bind(info); });
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
  for (const PolicyStatus& p : policies_->Status()) {
    if (p.version == 0) continue;
    if (p.name == kDefaultPolicyName) {
      spdlog::info("policy {}: {} rules", p.source, p.rules);
    } else {
      spdlog::info("policy {}@{} from {}: {} rules", p.name, p.version, p.source, p.rules);
    }
  }
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
  hook_handler_ = std::make_unique<HookRequestHandler>(*engine_, config_.allowed_uids);
  if (config_.hook_socket.empty()) return absl::OkStatus();
  auto hs = hook::HookServer::Start(config_.hook_socket, hook_handler_.get());
  if (!hs.ok()) return Prefixed("hook socket", hs.status());
  hook_server_ = *std::move(hs);
  return absl::OkStatus();
}

std::vector<admin::PolicySummary> Agent::PolicySummaries() const {
  std::vector<admin::PolicySummary> out;
  for (const PolicyStatus& p : policies_->Status()) out.push_back(Summary(p));
  return out;
}

absl::StatusOr<admin::PolicySummary> Agent::Reload() {
  absl::Status s = policies_->Reload();
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) return s;
  if (!s.ok()) return absl::InvalidArgumentError(s.message());
  for (const PolicyStatus& p : policies_->Status()) {
    if (p.name == kDefaultPolicyName) return Summary(p);
  }
  return absl::InternalError("no default policy");
}

absl::Status Agent::StartAdmin() {
  if (config_.admin_socket.empty()) return absl::OkStatus();
  admin::AdminServer::Options aopts;
  aopts.socket_path = config_.admin_socket;
  aopts.allowed_uids = config_.admin_uids;
  aopts.containers = [this] { return engine_->Containers(); };
  aopts.totals = [this] { return engine_->Totals(); };
  aopts.policy = [this] {
    for (const PolicyStatus& p : policies_->Status()) {
      if (p.name == kDefaultPolicyName) return Summary(p);
    }
    return admin::PolicySummary{};
  };
  aopts.policies = [this] { return PolicySummaries(); };
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
    WriteSample(out, "seccomp_agent_policy_reloads_total", "result=\"ok\"",
                policies_->reloads_ok());
    WriteSample(out, "seccomp_agent_policy_reloads_total", "result=\"error\"",
                policies_->reloads_failed());
    WriteHeader(out, "seccomp_agent_policy_rules", "Rules in each policy in force.", "gauge");
    for (const PolicyStatus& p : policies_->Status()) {
      std::string l;
      metrics::AppendLabel(&l, "policy", p.name);
      WriteSample(out, "seccomp_agent_policy_rules", l, static_cast<uint64_t>(p.rules));
    }
    if (decisions_) WriteDecisionLogMetrics(*decisions_, out);
    if (!admin_) return;
    WriteHeader(out, "seccomp_agent_admin_connections_rejected_total",
                "Admin socket connections refused by the SO_PEERCRED check.", "counter");
    WriteSample(out, "seccomp_agent_admin_connections_rejected_total", "",
                admin_->rejected_connections());
    WriteHeader(out, "seccomp_agent_watch_events_dropped_total",
                "Decision events dropped for slow admin watchers.", "counter");
    WriteSample(out, "seccomp_agent_watch_events_dropped_total", "", broadcaster_.dropped_total());
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
  registry_.AddCollector([this](std::string* out) {
    WritePolicyMetrics(policies_->Status(), engine_->Containers(), out);
    WritePluginMetrics(policies_->PluginStats(), out);
  });
  auto m = metrics::HttpServer::Start(
      config_.metrics_address, &registry_,
      [this] { return serving_.load() && engine_->StuckWorkers() == 0; }, config_.http);
  if (!m.ok()) return m.status();
  metrics_server_ = *std::move(m);
  spdlog::info("metrics on http://{}/metrics (port {}, at most {} connections)",
               config_.metrics_address, metrics_server_->port(), config_.http.max_connections);
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
    if (config_.policy_path.empty() && config_.policy_dir.empty()) {
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

// --check_policy: the default policy and every file of the policy
// directory, each loaded as the agent would.
int CheckPolicy(const Config& config) {
  absl::StatusOr<std::shared_ptr<const CompiledPolicy>> p = CompiledPolicy::BuiltinDefault();
  if (!config.policy_path.empty()) p = CompiledPolicy::LoadFile(config.policy_path);
  if (!p.ok()) {
    spdlog::critical("cannot load policy: {}", std::string(p.status().message()));
    return 2;
  }
  printf("policy %s: OK, %d rules\n", (*p)->source().c_str(), (*p)->proto().rules_size());
  if (config.policy_dir.empty()) return 0;
  PolicySetOptions o;
  o.default_file = config.policy_path;
  o.dir = config.policy_dir;
  auto set = PolicySet::Open(std::move(o));
  if (!set.ok()) return 2;
  int failed = 0;
  for (const PolicyStatus& s : (*set)->Status()) {
    if (s.name == kDefaultPolicyName) continue;
    if (s.error.empty()) {
      printf("policy %s (%s): OK, %d rules\n", s.name.c_str(), s.source.c_str(), s.rules);
    } else {
      printf("policy %s: ERROR %s\n", s.name.c_str(), s.error.c_str());
      failed++;
    }
  }
  return failed > 0 ? 2 : 0;
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
