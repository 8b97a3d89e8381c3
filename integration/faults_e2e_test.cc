// Fault tests (issue 7, hardening) against the real agent binary and real
// runc / crun containers:
//  * an SA_RESTART signal storm while a crun container does emulated
//    (replace_write) writes and (rewrite_bind) binds: every write lands
//    once, every bind lands where the policy says, no EADDRINUSE (strictly
//    with SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV; within the kernel's
//    lost-reply window without it);
//  * exec while a thread's decision is pending (a stopped plugin): the exec
//    is not held up, the dead thread's decision ends as task-gone, the new
//    image's calls are decided, another container is unaffected;
//  * 1,000 threads of one process trapping at once;
//  * a plugin SIGKILLed under load: fail closed within the deadline, and
//    decisions come from the plugin again after it restarts;
//  * the policy swapped and SIGHUP'd many times under load, once with a
//    broken file: every decision is one policy's, the broken file is refused.
// The task SIGKILLed mid-decision is agent/engine:engine_test
// TaskKilledMidDecisionIsNormal and agent/injector:conformance_test
// TaskGoneMeansNoSideEffect; the RSS soak is integration:soak_test.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/container.h"
#include "integration/harness/subprocess.h"
#include "integration/harness/test_util.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::integration {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// Copies the static fault_workload into a container's rootfs as /bin/fw.
bool InstallWorkload(const Container& c) {
  std::error_code ec;
  const std::string dst = c.rootfs() + "/bin/fw";
  fs::copy_file(Runfile("agent/testing/fault_workload_static"), dst,
                fs::copy_options::overwrite_existing, ec);
  if (ec) {
    ADD_FAILURE() << "copy fault_workload: " << ec.message();
    return false;
  }
  chmod(dst.c_str(), 0755);
  return true;
}

// The agent's thread and fd counts (/proc/PID/status Threads, /proc/PID/fd).
struct ProcCounts {
  long threads = -1;
  long fds = -1;
};
ProcCounts Counts(pid_t pid) {
  ProcCounts c;
  std::ifstream st(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(st, line)) {
    if (line.rfind("Threads:", 0) == 0) (void)absl::SimpleAtoi(line.substr(8), &c.threads);
  }
  std::error_code ec;
  c.fds = 0;
  for (auto it = fs::directory_iterator(absl::StrCat("/proc/", pid, "/fd"), ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    ++c.fds;
  }
  return c;
}

int64_t Latency(const nlohmann::json& d) { return d.value("latency_ns", int64_t{0}); }

class FaultsE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root (containers)";
    auto d = TempDir::Make("sa-fault");
    ASSERT_TRUE(d.ok()) << d.status();
    dir_ = std::make_unique<TempDir>(*std::move(d));
  }

  void StartAgent(const std::string& policy, std::vector<std::string> flags = {}) {
    AgentOptions o;
    o.policy_yaml = policy;
    o.extra_flags = std::move(flags);
    auto a = Agent::Start(o);
    ASSERT_TRUE(a.ok()) << a.status();
    agent_ = *std::move(a);
  }

  std::unique_ptr<Container> MakeContainer(Runtime rt, const std::string& id,
                                           std::vector<std::string> args,
                                           std::vector<std::string> syscalls,
                                           std::map<std::string, std::string> annotations = {}) {
    ContainerConfig cfg;
    cfg.args = std::move(args);
    cfg.seccomp = SeccompConfig{agent_->socket_path(), std::nullopt, std::move(syscalls)};
    cfg.annotations = std::move(annotations);
    auto c = Container::Create(rt, id, cfg);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return nullptr;
    if (!InstallWorkload(**c)) return nullptr;
    return *std::move(c);
  }

  std::unique_ptr<Subprocess> StartPlugin(const std::string& sock, std::vector<std::string> extra) {
    std::vector<std::string> argv = {
        Runfile("agent/plugin/examples/redirect_by_label/redirect_by_label"),
        "--listen=unix://" + sock, "--label=example.com/redirect=yes",
        "--map=/etc/app.conf=/srv/app.conf"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = Subprocess::Start(argv);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return nullptr;
    EXPECT_TRUE(WaitForSocket(sock, absl::Seconds(15))) << "plugin did not listen on " << sock;
    return *std::move(p);
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Agent> agent_;
};

// ------------------------------------------------ SA_RESTART signal storm

constexpr char kStormPolicy[] = R"(
version: 1
default_action: {allow: {}}
injection: {mode: auto}
rules:
  - name: redact-secrets
    match: {syscalls: [write]}
    action: {replace_write: {redact_regex: "secret-[0-9]+", redaction: "[REDACTED]"}}
  - name: port-80-to-8080
    match: {syscalls: [bind], args: {sockaddr: {family: AF_INET, port: 80}}}
    action: {rewrite_bind: {map: {"0.0.0.0:80": "127.0.0.1:8080"}}}
  - name: no-mkdir-in-forbidden
    match: {syscalls: [mkdir, mkdirat], args: {path: "/forbidden/**"}}
    action: {deny: {errno: EPERM}}
)";

// An SA_RESTART signal storm (tgkill every 10-60 us) over >= kN emulated
// writes (replace_write, O_APPEND) and >= kN emulated binds (rewrite_bind,
// port 80 -> 127.0.0.1:8080, a new socket each time, its fd number cycling
// so consecutive binds are distinct calls) in a crun container
// (runc 1.1.5 refuses NOTIFY on write). Two filters:
//  * kRuntimeDefault: what runtimes install. The agent's replay guard
//    carries it: a restarted call gets the interrupted call's remembered
//    result. One window is beyond any supervisor: a signal wakes the task,
//    the agent's SEND lands before the task retakes the notify lock, SEND
//    returns 0 and the kernel drops the reply (kernel/seccomp.c, the
//    interrupted path), so the restarted call runs again. The test allows
//    those few (an adjacent repeated record, a bind that says EINVAL): at
//    most 3, or 1% of the interrupted calls (seen: 0-1 in 40-13,000). Before
//    the guard made a restarted call wait for the interrupted one it was
//    4.5-50%.
//  * kWaitKillableRecv: linux.seccomp.flags SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
//    (crun accepts it): once the agent has the notification, only a fatal
//    signal ends the wait, so the window is closed: strictly exactly once.
enum class StormFilter { kRuntimeDefault, kWaitKillableRecv };

class SaRestartStormTest : public FaultsE2ETest,
                           public ::testing::WithParamInterface<StormFilter> {};

TEST_P(SaRestartStormTest, EmulatedWritesAndBindsRunOnce) {
  constexpr int kN = 1500;
  const bool strict = GetParam() == StormFilter::kWaitKillableRecv;
  StartAgent(kStormPolicy);
  const std::string id = UniqueContainerId("e2e-storm");
  auto c = MakeContainer(Runtime::kCrun, id,
                         {"sh", "-c",
                          absl::StrCat("/bin/fw storm ", kN,
                                       " /tmp/out; echo storm_rc=$?; mkdir /forbidden/after; "
                                       "echo mkdir_rc=$?")},
                         {"write", "bind", "mkdir", "mkdirat"});
  ASSERT_NE(c, nullptr);
  if (strict) {
    const std::string cfg = c->bundle() + "/config.json";
    nlohmann::json j = nlohmann::json::parse(ReadAll(cfg), nullptr, false);
    ASSERT_FALSE(j.is_discarded());
    j["linux"]["seccomp"]["flags"] = {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"};
    std::ofstream(cfg, std::ios::trunc) << j.dump(2);
  }
  // The workload runs each loop until told: strict, at once (after kN
  // calls); otherwise once the agent has replayed two interrupted calls
  // of that kind (or after 10 s).
  const std::string done = c->rootfs() + "/tmp/out";
  if (strict) {
    std::ofstream(done + ".writes-done") << "1";
    std::ofstream(done + ".binds-done") << "1";
  }
  auto started = c->Start();
  ASSERT_TRUE(started.ok()) << started.status();
  if (!strict) {
    for (const std::string rule : {"redact-secrets", "port-80-to-8080"}) {
      agent_->WaitForDecisions(
          id,
          [&](const std::vector<nlohmann::json>& ds) {
            int n = 0;
            for (const auto& d : ds) {
              n += d.value("rule", "") == rule && d.value("result", "").rfind("replayed", 0) == 0;
            }
            return n >= 2;
          },
          absl::Seconds(10));
      std::ofstream(done + (rule == "redact-secrets" ? ".writes-done" : ".binds-done")) << "1";
    }
  }
  ProcessResult r;
  r.exit = (*started)->Wait(absl::Seconds(120));
  r.out = (*started)->StdoutText();
  r.err = (*started)->StderrText();
  const std::string out = r.out + r.err;
  ASSERT_FALSE(r.exit.timed_out) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  ASSERT_THAT(out, HasSubstr("storm_rc=")) << r.Describe();
  const long signals = Field(out, "signals");
  // Calls during which the handler ran (interrupted, or the signal taken
  // on the way out). How many depends on the machine's speed (729 of 3000
  // under ASan at load 17, ~1500 unsanitized): a fifth shows the storm ran.
  EXPECT_GE(Field(out, "writes_hit") + Field(out, "binds_hit"), 2 * kN / 5)
      << "the storm did not storm: " << r.Describe();
  const long n_writes = Field(out, "writes"), n_binds = Field(out, "binds");
  ASSERT_GE(n_writes, kN) << r.Describe();
  ASSERT_GE(n_binds, kN) << r.Describe();
  EXPECT_EQ(Field(out, "writes_ok"), n_writes) << r.Describe();
  EXPECT_EQ(Field(out, "eaddrinuse"), 0) << r.Describe();
  const long binds_bad = Field(out, "binds_bad");
  ASSERT_GE(binds_bad, 0) << r.Describe();

  // The file is every redacted record, in order; the only thing allowed
  // (kRuntimeDefault) is a record repeated right after itself.
  const std::string got = ReadAll(c->rootfs() + "/tmp/out");
  constexpr size_t kLen = sizeof("rec-000000 [REDACTED]\n") - 1;
  size_t pos = 0;
  long repeats = 0;
  bool intact = got.size() % kLen == 0;
  for (long i = 0; i < n_writes && intact; ++i) {
    char b[64];
    snprintf(b, sizeof(b), "rec-%06ld [REDACTED]\n", i);
    if (got.compare(pos, kLen, b) != 0) {
      intact = false;
      ADD_FAILURE() << "record " << i << " missing or torn at byte " << pos << ": "
                    << got.substr(pos, kLen);
      break;
    }
    pos += kLen;
    while (got.compare(pos, kLen, b) == 0) {
      ++repeats;
      pos += kLen;
    }
  }
  EXPECT_TRUE(intact && pos == got.size()) << "trailing bytes after the last record";

  // The agent is still serving: the mkdir after the storm got its EPERM.
  EXPECT_THAT(out, HasSubstr("mkdir_rc=1"));
  EXPECT_THAT(out, HasSubstr("Operation not permitted"));
  EXPECT_FALSE(fs::exists(c->rootfs() + "/forbidden/after"));
  EXPECT_FALSE(agent_->exited());

  long interrupted = 0, replayed = 0, writes = 0, binds = 0;
  for (const auto& d : agent_->DecisionsFor(id)) {
    const std::string rule = d.value("rule", "");
    const std::string result = d.value("result", "");
    if (rule == "redact-secrets") ++writes;
    if (rule == "port-80-to-8080") ++binds;
    if (rule != "redact-secrets" && rule != "port-80-to-8080") continue;
    if (result == "task-gone") ++interrupted;
    if (result.rfind("replayed", 0) == 0) ++replayed;
  }
  RecordProperty("signals", std::to_string(signals));
  RecordProperty("interrupted", std::to_string(interrupted));
  RecordProperty("replayed", std::to_string(replayed));
  RecordProperty("lost_reply_repeats", std::to_string(repeats + binds_bad));
  std::cout << "storm (" << (strict ? "WAIT_KILLABLE_RECV" : "runtime default")
            << "): signals=" << signals << " write decisions=" << writes
            << " bind decisions=" << binds << " interrupted=" << interrupted
            << " replayed=" << replayed
            << " calls hit by a signal=" << Field(out, "writes_hit") + Field(out, "binds_hit")
            << " repeated records=" << repeats << " bad binds=" << binds_bad << "\n";
  EXPECT_GE(writes, n_writes);
  EXPECT_GE(binds, n_binds);
  if (strict) {
    EXPECT_EQ(repeats, 0);
    EXPECT_EQ(binds_bad, 0) << r.Describe();
    EXPECT_THAT(out, HasSubstr("storm_rc=0"));
  } else {
    // The storm really hit pending emulations (interrupted after the
    // side effect: replayed), and the kernel's lost replies stay rare.
    EXPECT_GT(replayed, 0) << "no interrupted side effect was replayed";
    EXPECT_GE(interrupted, replayed);  // a replay follows an interrupted call
    EXPECT_LE(repeats + binds_bad, std::max<long>(3, interrupted / 100))
        << "side effects ran twice: " << r.Describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Filters, SaRestartStormTest,
                         ::testing::Values(StormFilter::kRuntimeDefault,
                                           StormFilter::kWaitKillableRecv),
                         [](const auto& info) {
                           return std::string(info.param == StormFilter::kRuntimeDefault
                                                  ? "RuntimeDefault"
                                                  : "WaitKillableRecv");
                         });

// ----------------------------------------- exec during a pending decision

TEST_F(FaultsE2ETest, ExecDuringAPendingDecisionIsCleanAndOthersAreUnaffected) {
  const std::string sock = dir_->path() + "/slow.sock";
  auto plugin = StartPlugin(sock, {"--cache_ttl_ms=0"});
  ASSERT_NE(plugin, nullptr);
  constexpr int kPluginTimeoutMs = 4000;
  StartAgent(absl::StrCat(R"(
version: 1
default_action: {allow: {}}
redirect_roots: [/srv]
plugins:
  - {name: slow, address: "unix://)",
                          sock, R"(", timeout_ms: )", kPluginTimeoutMs,
                          R"(, on_error: deny, error_errno: EACCES}
rules:
  - name: ask-slow
    match: {syscalls: [openat, open], args: {path: "/etc/slow.conf"}}
    action: {plugin: slow}
  - name: no-mkdir-in-forbidden
    match: {syscalls: [mkdir, mkdirat], args: {path: "/forbidden/**"}}
    action: {deny: {errno: EPERM}}
)"));
  // One decision through the running plugin first, so the agent's channel
  // is connected; then a stopped plugin: the next decision stays pending
  // until the agent's deadline.
  const std::string warm_id = UniqueContainerId("e2e-exec-warm");
  auto warm = MakeContainer(Runtime::kRunc, warm_id, {"sh", "-c", "cat /etc/slow.conf; true"},
                            {"openat", "open"});
  ASSERT_NE(warm, nullptr);
  ProcessResult wr = warm->Run(absl::Seconds(60));
  ASSERT_EQ(wr.exit.exit_code, 0) << wr.Describe();
  ASSERT_TRUE(agent_->WaitForDecisions(
      warm_id,
      [](const std::vector<nlohmann::json>& ds) {
        for (const auto& d : ds) {
          if (d.value("rule", "") == "ask-slow" &&
              d.value("backend", "").find("plugin:slow") != std::string::npos) {
            return true;
          }
        }
        return false;
      },
      absl::Seconds(10)))
      << "the plugin did not decide the warm-up open; agent:\n"
      << agent_->Stderr();
  plugin->Signal(SIGSTOP);

  const std::string id = UniqueContainerId("e2e-exec");
  auto c = MakeContainer(Runtime::kRunc, id,
                         {"/bin/fw", "exec-pending", "500", "/etc/slow.conf", "--", "/bin/sh", "-c",
                          "mkdir /forbidden/new 2>&1; echo after_exec_rc=$?"},
                         {"openat", "open", "mkdir", "mkdirat"});
  ASSERT_NE(c, nullptr);
  auto run = c->Start();
  ASSERT_TRUE(run.ok()) << run.status();
  auto exec_line = (*run)->WaitForStdout("EXEC at=", absl::Seconds(30));
  ASSERT_TRUE(exec_line.has_value()) << (*run)->StdoutText() << (*run)->StderrText() << "\nagent:\n"
                                     << agent_->Stderr();
  auto after = (*run)->WaitForStdout("after_exec_rc=", absl::Seconds(kPluginTimeoutMs / 1000 + 10));
  ASSERT_TRUE(after.has_value()) << (*run)->StdoutText() << (*run)->StderrText();
  const absl::Duration exec_took = after->when - exec_line->when;
  // de_thread killed the trapped thread at once: the exec did not wait for
  // the pending decision (4 s, trapped 0.5 s before the exec).
  EXPECT_LT(exec_took, absl::Seconds(2)) << "exec waited for the pending decision";
  ExitInfo e = (*run)->Wait(absl::Seconds(30));
  const std::string out = (*run)->StdoutText();
  EXPECT_EQ(e.exit_code, 0) << e.ToString() << out << (*run)->StderrText();
  EXPECT_THAT(out, HasSubstr("OPENING /etc/slow.conf"));
  EXPECT_THAT(out, Not(HasSubstr("OPENED")));  // that thread never returned
  // The new image's trapped call was decided by the policy.
  EXPECT_THAT(out, HasSubstr("after_exec_rc=1"));
  EXPECT_THAT(out, HasSubstr("Operation not permitted"));

  // Another container while the dead thread's decision is still pending.
  const std::string other_id = UniqueContainerId("e2e-exec-other");
  auto other = MakeContainer(Runtime::kRunc, other_id,
                             {"sh", "-c",
                              "i=0; while [ $i -lt 100 ]; do mkdir /forbidden/o 2>/dev/null; "
                              "i=$((i+1)); done; echo other_done"},
                             {"mkdir", "mkdirat"});
  ASSERT_NE(other, nullptr);
  ProcessResult o = other->Run(absl::Seconds(60));
  EXPECT_EQ(o.exit.exit_code, 0) << o.Describe();
  EXPECT_THAT(o.out, HasSubstr("other_done"));
  std::vector<nlohmann::json> od = agent_->DecisionsFor(other_id);
  int64_t other_max = 0;
  int other_denied = 0;
  for (const auto& d : od) {
    if (d.value("rule", "") != "no-mkdir-in-forbidden") continue;
    if (d.value("result", "") == "EPERM") ++other_denied;
    other_max = std::max(other_max, Latency(d));
  }
  EXPECT_EQ(other_denied, 100);
  EXPECT_LT(other_max, int64_t{500} * 1000 * 1000) << "the other container waited";
  std::cout << "exec: exec to new image " << absl::ToDoubleMilliseconds(exec_took)
            << " ms; other container max latency " << other_max / 1000 << " us\n";

  // The pending decision ends at the deadline, answered into a dead task.
  bool gone = agent_->WaitForDecisions(
      id,
      [](const std::vector<nlohmann::json>& ds) {
        for (const auto& d : ds) {
          if (d.value("rule", "") == "ask-slow" && d.value("result", "") == "task-gone")
            return true;
        }
        return false;
      },
      absl::Milliseconds(kPluginTimeoutMs) + absl::Seconds(5));
  EXPECT_TRUE(gone) << "no task-gone decision for the exec'd-away thread; agent:\n"
                    << agent_->Stderr();
  for (const auto& d : agent_->DecisionsFor(id)) {
    EXPECT_FALSE(d.contains("unparsed")) << d.dump();
  }
  plugin->Signal(SIGCONT);
  EXPECT_FALSE(agent_->exited()) << agent_->Stderr();
}

// ------------------------------------------------------ 1,000 threads

// Two bursts of 1,000 threads, each released by one barrier into a trapped
// mkdir: every thread gets the policy's answer, within a bound, and the
// agent's threads and fds after the second burst are what they were after
// the first (a fixed pool, nothing per call or per container left behind).
TEST_F(FaultsE2ETest, AThousandThreadsTrappingAtOnceAllGetThePolicysAnswer) {
  constexpr int kThreads = 1000;
  StartAgent(kTestPolicyYaml);
  const ProcCounts before = Counts(agent_->pid());
  std::vector<ProcCounts> after_round;
  long peak_threads = 0, peak_fds = 0;
  for (int round = 0; round < 2; ++round) {
    const std::string id = UniqueContainerId("e2e-threads");
    auto c = MakeContainer(Runtime::kRunc, id, {"/bin/fw", "threads", std::to_string(kThreads)},
                           {"mkdir", "mkdirat"});
    ASSERT_NE(c, nullptr);
    auto run = c->Start();
    ASSERT_TRUE(run.ok()) << run.status();
    ASSERT_TRUE((*run)->WaitForStdout("BARRIER", absl::Seconds(60)))
        << (*run)->StdoutText() << (*run)->StderrText();
    while (!(*run)->exited()) {
      ProcCounts now = Counts(agent_->pid());
      peak_threads = std::max(peak_threads, now.threads);
      peak_fds = std::max(peak_fds, now.fds);
      absl::SleepFor(absl::Milliseconds(10));
    }
    ExitInfo e = (*run)->Wait(absl::Seconds(60));
    const std::string out = (*run)->StdoutText() + (*run)->StderrText();
    EXPECT_EQ(e.exit_code, 0) << e.ToString() << out;
    EXPECT_EQ(Field(out, "threads"), kThreads) << out;
    EXPECT_EQ(Field(out, "spoofed"), kThreads / 2) << out;
    EXPECT_EQ(Field(out, "denied"), kThreads / 2) << out;
    EXPECT_EQ(Field(out, "wrong"), 0) << out;
    const long wall_ms = Field(out, "wall_ms");
    EXPECT_GE(wall_ms, 0) << out;
    EXPECT_LT(wall_ms, 15000) << "1000 trapped calls took too long";
    // Nothing was really made.
    for (int i = 0; i < kThreads; ++i) {
      const std::string p = i % 2 == 0 ? absl::StrCat("/fake-", i) : absl::StrCat("/forbidden/", i);
      if (fs::exists(c->rootfs() + p)) {
        ADD_FAILURE() << p << " exists";
        break;
      }
    }
    size_t mkdirs = 0;
    for (const auto& d : agent_->DecisionsFor(id)) {
      const std::string rule = d.value("rule", "");
      if (rule == "fake-success" || rule == "no-mkdir-in-forbidden") ++mkdirs;
    }
    EXPECT_EQ(mkdirs, static_cast<size_t>(kThreads));
    ASSERT_TRUE(agent_->WaitForLog(absl::StrCat("container ", id, " removed: "), absl::Seconds(10)))
        << agent_->Stderr();
    absl::SleepFor(absl::Milliseconds(200));
    after_round.push_back(Counts(agent_->pid()));
    std::cout << "threads round " << round << ": wall " << wall_ms << " ms, slowest call "
              << Field(out, "max_ms") << " ms; agent threads " << before.threads << " -> "
              << after_round.back().threads << " (peak " << peak_threads << "), fds " << before.fds
              << " -> " << after_round.back().fds << " (peak " << peak_fds << ")\n";
    RecordProperty(absl::StrCat("wall_ms_", round), std::to_string(wall_ms));
  }
  // Bounded: the engine's pool, not a thread or an fd per pending call.
  EXPECT_LE(peak_threads, before.threads + 16);
  EXPECT_LE(peak_fds, before.fds + 16);
  EXPECT_LE(after_round[1].threads, after_round[0].threads);
  EXPECT_LE(after_round[1].fds, after_round[0].fds);
  EXPECT_FALSE(agent_->exited());
}

// ---------------------------------------------- plugin killed under load

// Counts every `cat /etc/app.conf`: from the plugin's redirect, denied by
// on_error, the original file (a fail-open: must never happen) or other.
constexpr char kCatLoop[] =
    // Written under another name: an open of /etc/app.conf itself would be
    // redirected too.
    "mkdir -p /srv && echo from-plugin > /srv/app.conf && echo original > /etc/app.tmp && "
    "mv /etc/app.tmp /etc/app.conf; "
    "p=0; d=0; o=0; x=0; "
    "while [ ! -e /tmp/stop ]; do "
    "  v=$(cat /etc/app.conf 2>&1); "
    "  case \"$v\" in *from-plugin*) p=$((p+1));; *denied*) d=$((d+1));; "
    "  *original*) o=$((o+1));; *) x=$((x+1)); echo \"other: $v\";; esac; "
    "done; echo RESULT plugin=$p denied=$d original=$o other=$x";

TEST_F(FaultsE2ETest, PluginKilledUnderLoadFailsClosedAndComesBack) {
  const std::string sock = dir_->path() + "/label.sock";
  std::unique_ptr<Subprocess> plugin = StartPlugin(sock, {"--cache_ttl_ms=0"});
  ASSERT_NE(plugin, nullptr);
  constexpr int kTimeoutMs = 500;
  StartAgent(absl::StrCat(R"(
version: 1
default_action: {allow: {}}
redirect_roots: [/srv]
plugins:
  - {name: label, address: "unix://)",
                          sock, R"(", timeout_ms: )", kTimeoutMs,
                          R"(, on_error: deny, error_errno: EACCES}
rules:
  - name: ask-label
    match: {syscalls: [openat, open], args: {path: "/etc/app.conf"}}
    action: {plugin: label}
)"));
  std::vector<std::unique_ptr<Container>> cs;
  std::vector<std::unique_ptr<Subprocess>> runs;
  for (int i = 0; i < 2; ++i) {
    cs.push_back(MakeContainer(Runtime::kRunc, UniqueContainerId("e2e-plugkill"),
                               {"sh", "-c", kCatLoop}, {"openat", "open"},
                               {{"example.com/redirect", "yes"}}));
    ASSERT_NE(cs.back(), nullptr);
    auto r = cs.back()->Start();
    ASSERT_TRUE(r.ok()) << r.status();
    runs.push_back(*std::move(r));
  }
  auto count = [&](size_t from, const std::string& what) {
    auto ds = agent_->Decisions();
    size_t n = 0;
    for (size_t i = from; i < ds.size(); ++i) {
      const auto& d = ds[i];
      if (d.value("rule", "") != "ask-label") continue;
      if (what == "plugin" && d.value("action", "") == "redirect_open") ++n;
      if (what == "denied" && d.value("result", "") == "EACCES") ++n;
    }
    return n;
  };
  auto wait_count = [&](size_t from, const std::string& what, size_t n, absl::Duration t) {
    absl::Time end = absl::Now() + t;
    while (absl::Now() < end) {
      if (count(from, what) >= n) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  };
  ASSERT_TRUE(wait_count(0, "plugin", 200, absl::Seconds(60)))
      << "no load through the plugin; agent:\n"
      << agent_->Stderr();

  // kill -9 mid-load.
  const size_t at_kill = agent_->Decisions().size();
  kill(plugin->pid(), SIGKILL);
  plugin->Wait(absl::Seconds(5));
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(wait_count(at_kill, "denied", 30, absl::Seconds(20)))
      << "calls did not fail closed after the kill; agent:\n"
      << agent_->Stderr();
  const absl::Duration to_deny = absl::Now() - killed;
  absl::SleepFor(absl::Seconds(1));

  // Restart on the same address (a SIGKILLed server leaves its socket file).
  unlink(sock.c_str());
  const size_t at_restart = agent_->Decisions().size();
  plugin = StartPlugin(sock, {"--cache_ttl_ms=0"});
  ASSERT_NE(plugin, nullptr);
  const absl::Time restarted = absl::Now();
  ASSERT_TRUE(wait_count(at_restart, "plugin", 50, absl::Seconds(30)))
      << "decisions did not come from the restarted plugin; agent:\n"
      << agent_->Stderr();
  const absl::Duration to_back = absl::Now() - restarted;

  for (auto& c : cs) std::ofstream(c->rootfs() + "/tmp/stop") << "stop\n";
  long plugin_total = 0, denied_total = 0;
  for (auto& r : runs) {
    ExitInfo e = r->Wait(absl::Seconds(30));
    const std::string out = r->StdoutText();
    EXPECT_EQ(e.exit_code, 0) << e.ToString() << out << r->StderrText();
    EXPECT_EQ(Field(out, "original"), 0) << "failed open: " << out;
    EXPECT_EQ(Field(out, "other"), 0) << out;
    EXPECT_GT(Field(out, "plugin"), 0) << out;
    EXPECT_GT(Field(out, "denied"), 0) << out;
    plugin_total += Field(out, "plugin");
    denied_total += Field(out, "denied");
  }
  // No decision hung beyond the deadline (plus scheduling slack), and none
  // was anything but the plugin's redirect or on_error's EACCES.
  int64_t max_ns = 0;
  size_t bad = 0;
  for (const auto& d : agent_->Decisions()) {
    if (d.value("rule", "") != "ask-label") continue;
    max_ns = std::max(max_ns, Latency(d));
    const bool ok = d.value("action", "") == "redirect_open" || d.value("result", "") == "EACCES";
    if (!ok && ++bad <= 3) ADD_FAILURE() << "unexpected decision " << d.dump();
  }
  EXPECT_LT(max_ns, int64_t{kTimeoutMs + 400} * 1000 * 1000);
  std::cout << "plugin kill: plugin=" << plugin_total << " denied=" << denied_total
            << "; fail-closed after " << absl::ToDoubleMilliseconds(to_deny) << " ms, back after "
            << absl::ToDoubleMilliseconds(to_back) << " ms; slowest decision " << max_ns / 1000000
            << " ms\n";
  EXPECT_FALSE(agent_->exited()) << agent_->Stderr();
}

// ------------------------------------------- policy reloaded under load

constexpr char kPolicyA[] = R"(version: 1
default_action: {allow: {}}
rules:
  - name: a-eacces
    match: {syscalls: [mkdir, mkdirat], args: {path: "/forbidden/**"}}
    action: {deny: {errno: EACCES}}
)";
constexpr char kPolicyB[] = R"(version: 1
default_action: {allow: {}}
rules:
  - name: b-eperm
    match: {syscalls: [mkdir, mkdirat], args: {path: "/forbidden/**"}}
    action: {deny: {errno: EPERM}}
  - name: b-spoof
    match: {syscalls: [mkdir, mkdirat], args: {path: "/fake*"}}
    action: {return: {value: 0}}
)";
constexpr char kPolicyBroken[] = R"(version: 1
default_action: {allow: {}}
rules:
  - name: broken
    match: {syscalls: [mkdri], args: {path: "/forbidden/**"}}
    action: {deny: {errno: EPERM}}
)";

constexpr char kMkdirLoop[] =
    "a=0; b=0; x=0; "
    "while [ ! -e /tmp/stop ]; do "
    "  v=$(mkdir /forbidden/x 2>&1); "
    "  case \"$v\" in *denied*) a=$((a+1));; *permitted*) b=$((b+1));; "
    "  *) x=$((x+1)); echo \"other: $v\"; rmdir /forbidden/x 2>/dev/null;; esac; "
    "done; echo RESULT a=$a b=$b other=$x";

TEST_F(FaultsE2ETest, PolicyReloadedUnderLoadNeverMixesAndRefusesABrokenFile) {
  StartAgent(kPolicyA);
  auto swap = [&](const char* text) {
    const std::string tmp = agent_->policy_path() + ".tmp";
    std::ofstream(tmp) << text;
    ASSERT_EQ(rename(tmp.c_str(), agent_->policy_path().c_str()), 0);
    agent_->Signal(SIGHUP);
  };
  const std::string id = UniqueContainerId("e2e-reload");
  auto c = MakeContainer(Runtime::kRunc, id,
                         {"sh", "-c", absl::StrCat("(", kMkdirLoop, ") & ", kMkdirLoop, "; wait")},
                         {"mkdir", "mkdirat"});
  ASSERT_NE(c, nullptr);
  auto run = c->Start();
  ASSERT_TRUE(run.ok()) << run.status();
  auto only_forbidden = [](std::vector<nlohmann::json> ds) {
    std::vector<nlohmann::json> out;
    for (auto& d : ds) {
      if (d.value("args", nlohmann::json::object()).value("path", "") == "/forbidden/x") {
        out.push_back(std::move(d));
      }
    }
    return out;
  };
  auto forbidden_decisions = [&] { return only_forbidden(agent_->DecisionsFor(id)); };
  ASSERT_TRUE(agent_->WaitForDecisions(
      id, [](const auto& ds) { return ds.size() >= 100; }, absl::Seconds(30)))
      << agent_->Stderr();

  constexpr int kSwaps = 30;
  int good = 0;
  const char* last = kPolicyA;
  for (int i = 1; i <= kSwaps; ++i) {
    if (i == kSwaps / 2) {
      // A broken file: refused with the reason; the old policy keeps serving.
      swap(kPolicyBroken);
      auto line = agent_->WaitForLog("policy reload failed", absl::Seconds(5));
      ASSERT_TRUE(line.has_value()) << agent_->Stderr();
      EXPECT_THAT(*line, HasSubstr("keeping the previous policy"));
      EXPECT_THAT(*line, HasSubstr("mkdri"));
      const size_t from = forbidden_decisions().size();
      const std::string want_rule = last == kPolicyA ? "a-eacces" : "b-eperm";
      ASSERT_TRUE(agent_->WaitForDecisions(
          id, [&](const auto& all) { return only_forbidden(all).size() >= from + 50; },
          absl::Seconds(20)));
      auto ds = forbidden_decisions();
      for (size_t k = from; k < ds.size(); ++k) {
        ASSERT_EQ(ds[k].value("rule", ""), want_rule)
            << "after the broken reload: " << ds[k].dump();
      }
      continue;
    }
    last = i % 2 == 1 ? kPolicyB : kPolicyA;
    swap(last);
    ++good;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(agent_->WaitForLogCount("policy reloaded from", good, absl::Seconds(10)))
      << agent_->Stderr();
  // Let the last policy serve a while, then stop.
  const size_t settled = forbidden_decisions().size();
  ASSERT_TRUE(agent_->WaitForDecisions(
      id, [&](const auto& all) { return only_forbidden(all).size() >= settled + 20; },
      absl::Seconds(20)));
  std::ofstream(c->rootfs() + "/tmp/stop") << "stop\n";
  ExitInfo e = (*run)->Wait(absl::Seconds(30));
  const std::string out = (*run)->StdoutText();
  EXPECT_EQ(e.exit_code, 0) << e.ToString() << out << (*run)->StderrText();

  // Every decision is one policy's rule with that rule's own answer.
  auto ds = forbidden_decisions();
  size_t from_a = 0, from_b = 0;
  for (const auto& d : ds) {
    const std::string rule = d.value("rule", "");
    const std::string result = d.value("result", "");
    if (rule == "a-eacces" && result == "EACCES") {
      ++from_a;
    } else if (rule == "b-eperm" && result == "EPERM") {
      ++from_b;
    } else {
      ADD_FAILURE() << "a decision from no single policy: " << d.dump();
      break;
    }
  }
  EXPECT_GT(from_a, 0u);
  EXPECT_GT(from_b, 0u);
  // What the container saw agrees: only the two policies' errnos.
  long seen_a = 0, seen_b = 0, loops = 0;
  std::regex re("RESULT a=([0-9]+) b=([0-9]+) other=([0-9]+)");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator();
       ++it, ++loops) {
    seen_a += std::stol((*it)[1].str());
    seen_b += std::stol((*it)[2].str());
    EXPECT_EQ((*it)[3].str(), "0") << out;
  }
  EXPECT_EQ(loops, 2) << out;
  EXPECT_GT(seen_a, 0);
  EXPECT_GT(seen_b, 0);
  EXPECT_EQ(agent_->CountLog("policy reload failed"), 1);
  // The last good policy is the one in force.
  EXPECT_EQ(ds.back().value("rule", ""), last == kPolicyA ? "a-eacces" : "b-eperm");
  std::cout << "reload: " << good << " reloads + 1 refused under load; decisions A=" << from_a
            << " B=" << from_b << "\n";
  EXPECT_FALSE(agent_->exited());
}

}  // namespace
}  // namespace seccomp_agent::integration
