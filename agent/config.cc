#include "agent/config.h"

#include <sys/stat.h>

#include <algorithm>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/common/status.h"
#include "oci-hook/hook_config.h"

ABSL_FLAG(std::string, socket, "/run/seccomp-agent/agent.sock",
          "Unix socket the runtime connects to (OCI linux.seccomp.listenerPath). The parent "
          "directory is created; the socket is mode 0600.");
ABSL_FLAG(std::string, policy, "",
          "Policy file (YAML or JSON). Empty: the built-in default policy. SIGHUP reloads it.");
ABSL_FLAG(std::string, policy_dir, "",
          "Directory of named policies: NAME.yaml or NAME.json each (a container binds to one "
          "by its listenerMetadata seccomp-agent.io/policy=NAME, its annotation "
          "seccomp-agent.io/policy, or --hook_config's selectors). Watched with inotify. Empty: "
          "the policy_dir of --hook_config, if given.");
ABSL_FLAG(std::string, hook_config, "",
          "The OCI hook's config file (e.g. /etc/seccomp-agent/hook.json): the agent uses its "
          "selectors, and its policy_dir unless --policy_dir is set, so the hook and the agent "
          "choose policies from one file. Empty: none.");
ABSL_FLAG(std::string, policy_error_errno, "EPERM",
          "Errno for every trapped syscall of a container whose policy is unknown or failed to "
          "load (fail closed).");
ABSL_FLAG(std::string, decision_log, "",
          "Decision log (JSON lines): a path, or - for stdout. Empty: none.");
ABSL_FLAG(uint64_t, decision_log_max_bytes, uint64_t{100} << 20,
          "Rotate the decision log file when the next line would take it past this size "
          "(PATH -> PATH.1). 0: never.");
ABSL_FLAG(int, decision_log_keep, 1,
          "Rotated decision log files kept (PATH.1 .. PATH.N); 0 truncates PATH instead.");
ABSL_FLAG(double, decision_log_rate, 1 << 20,
          "Bytes per second each container's decision log lines may take (file or stdout); "
          "beyond it lines are dropped and a {\"dropped\":N} line reports them. 0: no limit.");
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
ABSL_FLAG(int, metrics_max_connections, 64,
          "Metrics endpoint: connections open at once; a new one closes the oldest.");
ABSL_FLAG(absl::Duration, metrics_timeout, absl::Seconds(5),
          "Metrics endpoint: time from accept until the request is read and the response "
          "taken; a connection still open then is closed.");
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

absl::StatusOr<std::vector<uid_t>> ParseUids(const std::vector<std::string>& in, const char* flag) {
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

// The per-container rate limit (--container_rate and what goes with it).
absl::Status ParseRateLimit(EngineOptions* e) {
  e->container_rate = absl::GetFlag(FLAGS_container_rate);
  e->container_burst = absl::GetFlag(FLAGS_container_burst);
  if (!(e->container_rate >= 0) || !(e->container_burst >= 0)) {
    return absl::InvalidArgumentError("--container_rate and --container_burst must be >= 0");
  }
  const std::string action = absl::GetFlag(FLAGS_rate_limit_action);
  if (action == "deny") {
    e->rate_limit_action = RateLimitAction::kDeny;
  } else if (action != "delay") {
    return absl::InvalidArgumentError(
        absl::StrCat("--rate_limit_action must be delay or deny, not ", action));
  }
  e->rate_limit_min_park_ns =
      std::max<int64_t>(0, absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_rate_limit_min_park)));
  e->rate_limit_errno = ErrnoFromString(absl::GetFlag(FLAGS_rate_limit_errno));
  if (e->rate_limit_errno < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rate_limit_errno: unknown errno ", absl::GetFlag(FLAGS_rate_limit_errno)));
  }
  return absl::OkStatus();
}

absl::Status ParseDecisionLog(DecisionLogOptions* d) {
  d->max_bytes = absl::GetFlag(FLAGS_decision_log_max_bytes);
  d->keep = absl::GetFlag(FLAGS_decision_log_keep);
  d->rate_bytes = absl::GetFlag(FLAGS_decision_log_rate);
  if (d->keep < 0 || d->keep > DecisionLog::kMaxKeep) {
    return absl::InvalidArgumentError(absl::StrCat("--decision_log_keep must be in 0..",
                                                   DecisionLog::kMaxKeep, ", not ", d->keep));
  }
  if (!(d->rate_bytes >= 0)) {
    return absl::InvalidArgumentError("--decision_log_rate must be >= 0");
  }
  return absl::OkStatus();
}

// The sockets next to --socket, each "none" to disable ("" in Config).
void ResolveSockets(Config* c) {
  c->hook_socket = absl::GetFlag(FLAGS_hook_socket);
  if (c->hook_socket.empty()) c->hook_socket = SocketNextTo(c->socket, "hook.sock");
  if (c->hook_socket == "none") c->hook_socket.clear();
  c->admin_socket = absl::GetFlag(FLAGS_admin_socket);
  if (c->admin_socket.empty()) c->admin_socket = SocketNextTo(c->socket, "admin.sock");
  if (c->admin_socket == "none") c->admin_socket.clear();
  c->holder_socket_flag = absl::GetFlag(FLAGS_holder_socket);
  c->holder_socket = c->holder_socket_flag;
  if (c->holder_socket.empty()) c->holder_socket = SocketNextTo(c->socket, "holder.sock");
  if (c->holder_socket == "none") c->holder_socket.clear();
}

// --policy_dir, --hook_config and --policy_error_errno.
absl::Status ParsePolicies(Config* c) {
  c->policy_dir = absl::GetFlag(FLAGS_policy_dir);
  const std::string hook_config = absl::GetFlag(FLAGS_hook_config);
  if (!hook_config.empty()) {
    SA_ASSIGN_OR_RETURN(hook::HookConfig h, hook::LoadHookConfig(hook_config, true));
    c->selectors = std::move(h.selectors);
    if (c->policy_dir.empty()) c->policy_dir = h.policy_dir;
  }
  struct stat st;
  if (!c->policy_dir.empty() && (stat(c->policy_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--policy_dir: ", c->policy_dir, " is not a directory"));
  }
  c->engine.policy_error_errno = ErrnoFromString(absl::GetFlag(FLAGS_policy_error_errno));
  if (c->engine.policy_error_errno <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("--policy_error_errno: unknown errno ",
                                                   absl::GetFlag(FLAGS_policy_error_errno)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string SocketNextTo(const std::string& socket, const std::string& name) {
  size_t slash = socket.rfind('/');
  return (slash == std::string::npos ? std::string(".") : socket.substr(0, slash)) + "/" + name;
}

absl::StatusOr<Config> ConfigFromFlags() {
  Config c;
  c.socket = absl::GetFlag(FLAGS_socket);
  c.policy_path = absl::GetFlag(FLAGS_policy);
  c.decision_log = absl::GetFlag(FLAGS_decision_log);
  SA_RETURN_IF_ERROR(ParseDecisionLog(&c.decision_log_options));
  c.log_level = absl::GetFlag(FLAGS_log_level);
  c.check_policy = absl::GetFlag(FLAGS_check_policy);
  c.run_holder = absl::GetFlag(FLAGS_holder);
  SA_ASSIGN_OR_RETURN(c.allowed_uids,
                      ParseUids(absl::GetFlag(FLAGS_allowed_uids), "--allowed_uids"));
  SA_ASSIGN_OR_RETURN(c.admin_uids, ParseUids(absl::GetFlag(FLAGS_admin_uids), "--admin_uids"));
  c.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  ResolveSockets(&c);
  SA_ASSIGN_OR_RETURN(c.holder_mode, holder::ParseHolderMode(absl::GetFlag(FLAGS_holder_mode)));
  c.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  c.http.max_connections = absl::GetFlag(FLAGS_metrics_max_connections);
  c.http.timeout = absl::GetFlag(FLAGS_metrics_timeout);
  if (c.http.max_connections < 1 || c.http.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--metrics_max_connections and --metrics_timeout must be positive");
  }
  c.metrics.max_series = absl::GetFlag(FLAGS_metrics_max_series);
  c.metrics.removed_grace = absl::GetFlag(FLAGS_metrics_removed_grace);
  c.engine.workers = absl::GetFlag(FLAGS_workers);
  SA_RETURN_IF_ERROR(ParseRateLimit(&c.engine));
  SA_RETURN_IF_ERROR(ParsePolicies(&c));
  return c;
}

}  // namespace seccomp_agent
