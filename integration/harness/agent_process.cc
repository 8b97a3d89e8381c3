#include "integration/harness/agent_process.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/status.h"
#include "integration/harness/test_util.h"

namespace seccomp_agent::integration {

const char kTestPolicyYaml[] = R"(version: 1
default_action: {allow: {}}
rules:
  - name: no-mkdir-in-forbidden
    match: {syscalls: [mkdir, mkdirat], args: {path: "/forbidden/**"}}
    action: {deny: {errno: EPERM}}
  - name: fake-success
    match: {syscalls: [mkdir, mkdirat], args: {path: "/fake*"}}
    action: {return: {value: 0}}
  - name: audit-opens
    match: {syscalls: [openat], args: {path: "/etc/**"}}
    action: {log: {}}
)";

std::string AgentBinaryPath() {
  if (const char* p = getenv("SECCOMP_AGENT_BIN"); p != nullptr && *p != '\0') return p;
  return Runfile("agent/seccomp-agent");
}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(const AgentOptions& options) {
  const std::string bin = AgentBinaryPath();
  if (access(bin.c_str(), X_OK) != 0) return ErrnoStatus(errno, "agent binary " + bin);
  SA_ASSIGN_OR_RETURN(TempDir dir, TempDir::Make("sa-agent"));
  auto a = std::unique_ptr<Agent>(new Agent(std::move(dir)));
  a->socket_ = a->dir_.path() + "/run/agent.sock";
  a->decision_log_ = a->dir_.path() + "/decisions.jsonl";
  std::vector<std::string> argv = {
      bin, "--socket=" + a->socket_, "--decision_log=" + a->decision_log_,
      // The tests read every decision, floods included.
      "--decision_log_rate=0", "--decision_log_max_bytes=0", "--log_level=" + options.log_level,
      // No listener-fd holder (a killed agent gives ENOSYS);
      // a test that wants one passes --holder_socket=PATH.
      "--holder_socket=none"};
  if (!options.policy_yaml.empty()) {
    a->policy_ = a->dir_.path() + "/policy.yaml";
    std::ofstream(a->policy_) << options.policy_yaml;
    argv.push_back("--policy=" + a->policy_);
  }
  if (!options.allowed_uids.empty()) argv.push_back("--allowed_uids=" + options.allowed_uids);
  argv.insert(argv.end(), options.extra_flags.begin(), options.extra_flags.end());
  SA_ASSIGN_OR_RETURN(a->process_, Subprocess::Start(argv));
  if (!a->process_->WaitForStderr("listening on " + a->socket_, options.ready_timeout)) {
    std::string err = a->process_->StderrText();
    a->Kill();
    return absl::DeadlineExceededError(
        absl::StrCat("agent did not log 'listening on ", a->socket_, "'; stderr:\n", err));
  }
  return a;
}

std::string Agent::admin_socket_path() const {
  return socket_.substr(0, socket_.rfind('/') + 1) + "admin.sock";
}

ProcessResult Agent::Ctl(const std::vector<std::string>& args, absl::Duration timeout) const {
  std::vector<std::string> argv = {Runfile("agent/ctl/seccomp-agentctl"),
                                   "--socket=" + admin_socket_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, timeout);
}

Agent::~Agent() {
  if (process_ != nullptr && !process_->exited()) Kill();
}

std::optional<std::string> Agent::WaitForLog(const std::string& needle, absl::Duration timeout) {
  auto l = process_->WaitForStderr(needle, timeout);
  if (!l) return std::nullopt;
  return l->text;
}

bool Agent::WaitForLogCount(const std::string& needle, int count, absl::Duration timeout) {
  return process_->WaitForStderrCount(needle, count, timeout);
}

int Agent::CountLog(const std::string& needle) {
  int n = 0;
  for (const auto& l : process_->StderrLines()) {
    if (l.text.find(needle) != std::string::npos) ++n;
  }
  return n;
}

namespace {

// Complete lines of the decision log containing `needle` (all if empty),
// parsed. Filtering the raw text first keeps a flood's log cheap to scan.
std::vector<nlohmann::json> ReadDecisions(const std::string& path, const std::string& needle) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path, std::ios::binary);
  if (!f) return out;
  std::string text((std::istreambuf_iterator<char>(f)), {});
  // Only complete lines: the agent may be in the middle of writing one.
  size_t end = text.rfind('\n');
  if (end == std::string::npos) return out;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text).substr(0, end), '\n')) {
    if (line.empty()) continue;
    if (!needle.empty() && line.find(needle) == absl::string_view::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) j = {{"unparsed", std::string(line)}};
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

std::vector<nlohmann::json> Agent::Decisions() { return ReadDecisions(decision_log_, ""); }

std::vector<nlohmann::json> Agent::DecisionsFor(const std::string& container_id) {
  std::vector<nlohmann::json> out;
  // The id as a JSON string value; the exact field is checked after parsing.
  for (auto& d : ReadDecisions(decision_log_, nlohmann::json(container_id).dump())) {
    if (d.value("container", "") == container_id) out.push_back(std::move(d));
  }
  return out;
}

bool Agent::WaitForDecisions(const std::string& container_id,
                             const std::function<bool(const std::vector<nlohmann::json>&)>& pred,
                             absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (pred(DecisionsFor(container_id))) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
}

ExitInfo Agent::Stop(absl::Duration timeout) {
  process_->Signal(SIGTERM);
  return process_->Wait(timeout);
}

void Agent::Kill() {
  kill(process_->pid(), SIGKILL);
  process_->Wait(absl::Seconds(10));
}

}  // namespace seccomp_agent::integration
