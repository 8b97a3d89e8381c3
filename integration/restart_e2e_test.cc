// Restart without losing containers (hardening issue): a runc container
// traps mkdir continuously while the agent is SIGKILLed and restarted
// several times. The listener-fd holder keeps the filter's listener open,
// so the container's trapped calls wait in the kernel while no agent runs
// and are answered by the next one: no ENOSYS, every call gets its policy
// answer, and the new agent's registry has the container again. A dead
// holder degrades to the old behaviour (ENOSYS after the agent dies) with
// one clear warning.
#include <signal.h>
#include <cerrno>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/container.h"
#include "integration/harness/subprocess.h"

namespace seccomp_agent::integration {
namespace {

using ::testing::HasSubstr;

// Counts every trapped mkdir's outcome. /fake$i: the policy spoofs 0 (the
// directory is never made); /forbidden/x: EPERM. Anything else (ENOSYS:
// "Function not implemented", or a real success) is counted as bad.
constexpr char kLoop[] =
    "i=0; fake=0; denied=0; enosys=0; other=0; "
    "while [ ! -e /tmp/stop ]; do "
    "  if mkdir /fake$i 2>/tmp/e1 && [ ! -e /fake$i ]; then fake=$((fake+1)); "
    "  elif grep -q 'not implemented' /tmp/e1; then enosys=$((enosys+1)); "
    "  else other=$((other+1)); cat /tmp/e1; fi; "
    "  if mkdir /forbidden/x 2>/tmp/e2; then other=$((other+1)); rmdir /forbidden/x; "
    "  elif grep -q 'not permitted' /tmp/e2; then denied=$((denied+1)); "
    "  elif grep -q 'not implemented' /tmp/e2; then enosys=$((enosys+1)); "
    "  else other=$((other+1)); cat /tmp/e2; fi; "
    "  i=$((i+1)); "
    "done; "
    "echo RESULT iterations=$i fake=$fake denied=$denied enosys=$enosys other=$other";

int Field(const std::string& out, const std::string& name) {
  std::smatch m;
  std::regex re(name + "=([0-9]+)");
  if (!std::regex_search(out, m, re)) return -1;
  int v = -1;
  (void)absl::SimpleAtoi(m[1].str(), &v);
  return v;
}

size_t CountMkdirs(const std::vector<nlohmann::json>& ds) {
  size_t n = 0;
  for (const auto& d : ds) {
    const std::string sc = d.value("syscall", "");
    if (sc == "mkdir" || sc == "mkdirat") ++n;
  }
  return n;
}

// The holder's pid from its log ("holder: serving PATH (pid N)").
pid_t HolderPid(const std::string& socket) {
  std::ifstream f(socket + ".log");
  std::string text((std::istreambuf_iterator<char>(f)), {});
  std::smatch m;
  std::regex re("holder: serving .* \\(pid ([0-9]+)\\)");
  pid_t pid = -1;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    (void)absl::SimpleAtoi((*it)[1].str(), &pid);
  }
  return pid;
}

// A trapped mkdir, "ready", then (once /tmp/go exists, at most 30 s) another.
constexpr char kMkdirThenAgainOnGo[] =
    "mkdir /forbidden/before 2>&1; echo ready; "
    "i=0; while [ ! -e /tmp/go ] && [ $i -lt 600 ]; do sleep 0.05; "
    "i=$((i+1)); done; mkdir /forbidden/after; echo after_rc=$?";

class RestartE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root (containers)";
    auto d = TempDir::Make("sa-hold");
    ASSERT_TRUE(d.ok()) << d.status();
    dir_.emplace(*std::move(d));
    holder_socket_ = dir_->path() + "/holder.sock";
  }
  void TearDown() override {
    // The holder also exits by itself once its socket file is gone.
    pid_t h = HolderPid(holder_socket_);
    if (h > 0) kill(h, SIGKILL);
  }

  absl::StatusOr<std::unique_ptr<Agent>> StartAgent() {
    AgentOptions o;
    o.policy_yaml = kTestPolicyYaml;
    o.extra_flags = {"--holder_socket=" + holder_socket_};
    return Agent::Start(o);
  }

  std::unique_ptr<Container> MakeContainer(const std::string& id, const std::string& socket,
                                           const std::string& script) {
    ContainerConfig cfg;
    cfg.args = {"sh", "-c", script};
    cfg.seccomp = SeccompConfig{socket, std::nullopt, {"mkdir", "mkdirat"}};
    auto c = Container::Create(Runtime::kRunc, id, cfg);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  std::optional<TempDir> dir_;
  std::string holder_socket_;
};

TEST_F(RestartE2ETest, KilledAgentRestartsWithoutLosingTheContainer) {
  constexpr int kRestarts = 3;
  auto first = StartAgent();
  ASSERT_TRUE(first.ok()) << first.status();
  std::vector<std::unique_ptr<Agent>> agents;
  agents.push_back(*std::move(first));
  ASSERT_TRUE(agents[0]->WaitForLog("holder: connected to " + holder_socket_, absl::Seconds(1)))
      << agents[0]->Stderr();

  const std::string id = UniqueContainerId("e2e-restart");
  auto c = MakeContainer(id, agents[0]->socket_path(), kLoop);
  ASSERT_NE(c, nullptr);
  auto run = c->Start();
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_TRUE(agents[0]->WaitForDecisions(
      id, [](const auto& ds) { return CountMkdirs(ds) >= 200; }, absl::Seconds(30)))
      << "container not served; agent:\n"
      << agents[0]->Stderr() << (*run)->StderrText();

  absl::Duration down_total;
  for (int r = 0; r < kRestarts; ++r) {
    Agent& old = *agents.back();
    // The container traps all the time; kill -9 lands wherever it lands.
    old.Kill();
    const absl::Time killed = absl::Now();
    absl::SleepFor(absl::Milliseconds(500));  // nobody serves: tasks must wait, not fail
    auto next = StartAgent();
    ASSERT_TRUE(next.ok()) << next.status();
    agents.push_back(*std::move(next));
    Agent& now = *agents.back();
    down_total += absl::Now() - killed;
    ASSERT_TRUE(
        now.WaitForLog(absl::StrCat("container ", id, " restored from holder"), absl::Seconds(5)))
        << "restart " << r << ": not restored; agent:\n"
        << now.Stderr();
    // Served again: the registry is whole and the loop goes on.
    ASSERT_TRUE(now.WaitForDecisions(
        id, [](const auto& ds) { return CountMkdirs(ds) >= 200; }, absl::Seconds(15)))
        << "restart " << r
        << ": container not served after restore (a notification the killed agent received "
           "but never answered leaves the task waiting forever); agent:\n"
        << now.Stderr() << "\ncontainer stdout:\n"
        << (*run)->StdoutText();
  }

  std::ofstream(c->rootfs() + "/tmp/stop") << "stop\n";
  ExitInfo e = (*run)->Wait(absl::Seconds(30));
  const std::string out = (*run)->StdoutText() + (*run)->StderrText();
  ASSERT_EQ(e.exit_code, 0) << e.ToString() << "\n" << out;
  const int iterations = Field(out, "iterations");
  const int fake = Field(out, "fake");
  const int denied = Field(out, "denied");
  const int enosys = Field(out, "enosys");
  const int other = Field(out, "other");
  ASSERT_GT(iterations, 0) << out;
  size_t logged = 0;
  for (auto& a : agents) logged += CountMkdirs(a->DecisionsFor(id));
  RecordProperty("restarts", kRestarts);
  int orphans = 0;
  for (auto& a : agents) orphans += a->CountLog("never answered; restarted");
  RecordProperty("orphaned_notifications_recovered", orphans);
  printf("restart_e2e: orphaned notifications recovered by SIGSTOP/SIGCONT: %d\n", orphans);
  RecordProperty("agent_down_ms_total", std::to_string(absl::ToInt64Milliseconds(down_total)));
  RecordProperty("trapped_mkdirs", 2 * iterations);
  RecordProperty("enosys", enosys);
  RecordProperty("other", other);
  RecordProperty("logged_mkdir_decisions", std::to_string(logged));
  printf(
      "restart_e2e: %d restarts, agent down %lld ms in total, %d trapped mkdirs "
      "(fake=%d denied=%d), enosys=%d other=%d, decisions logged by the agents=%zu\n",
      kRestarts, static_cast<long long>(absl::ToInt64Milliseconds(down_total)), 2 * iterations,
      fake, denied, enosys, other, logged);
  EXPECT_EQ(enosys, 0) << out;
  EXPECT_EQ(other, 0) << out;
  // Every trapped call got its policy answer.
  EXPECT_EQ(fake, iterations) << out;
  EXPECT_EQ(denied, iterations) << out;
  // The decision log may miss the line of a call answered right before a
  // kill (the reply is sent first); never more than a handful.
  EXPECT_LE(static_cast<size_t>(2 * iterations) - std::min<size_t>(logged, 2 * iterations),
            static_cast<size_t>(kRestarts) * 8);
  // The exited container leaves the last agent's registry (and the holder).
  EXPECT_TRUE(
      agents.back()->WaitForLog(absl::StrCat("container ", id, " removed: "), absl::Seconds(5)))
      << agents.back()->Stderr();
  agents.back()->Stop();
}

// Four shell loops flood the agent with denied mkdirs (it is busy nearly
// all the time), and it is SIGKILLed ten times. Now and then the kill lands
// between NOTIF_RECV and NOTIF_SEND: that notification stays SENT in the
// kernel, is never delivered again, and its task would wait forever; the
// restarted agent finds such tasks and restarts their syscalls. After each
// restart every loop must make progress again, and no call sees ENOSYS.
TEST_F(RestartE2ETest, FloodedAgentKilledTenTimesEveryLoopKeepsGoing) {
  constexpr int kLoops = 4;
  constexpr int kRestarts = 10;
  auto first = StartAgent();
  ASSERT_TRUE(first.ok()) << first.status();
  std::vector<std::unique_ptr<Agent>> agents;
  agents.push_back(*std::move(first));
  std::string script;
  for (int k = 0; k < kLoops; ++k) {
    absl::StrAppend(&script, "(n=0; while [ ! -e /tmp/stop ]; do mkdir /forbidden/L", k,
                    " 2>>/tmp/err", k, "; n=$((n+1)); done; echo L", k, "=$n) & ");
  }
  absl::StrAppend(&script,
                  "wait; echo enosys=$(cat /tmp/err* | grep -c 'not implemented'); "
                  "echo eperm=$(cat /tmp/err* | grep -c 'not permitted')");
  const std::string id = UniqueContainerId("e2e-restart-flood");
  auto c = MakeContainer(id, agents[0]->socket_path(), script);
  ASSERT_NE(c, nullptr);
  auto run = c->Start();
  ASSERT_TRUE(run.ok()) << run.status();
  auto every_loop = [](int min_each) {
    return [min_each](const std::vector<nlohmann::json>& ds) {
      for (int k = 0; k < kLoops; ++k) {
        const std::string needle = absl::StrCat("/forbidden/L", k);
        int n = 0;
        for (const auto& d : ds) {
          if (d.dump().find(needle) != std::string::npos) ++n;
        }
        if (n < min_each) return false;
      }
      return true;
    };
  };
  ASSERT_TRUE(agents[0]->WaitForDecisions(id, every_loop(50), absl::Seconds(30)))
      << agents[0]->Stderr();
  for (int r = 0; r < kRestarts; ++r) {
    agents.back()->Kill();
    absl::SleepFor(absl::Milliseconds(200));
    auto next = StartAgent();
    ASSERT_TRUE(next.ok()) << next.status();
    agents.push_back(*std::move(next));
    Agent& now = *agents.back();
    ASSERT_TRUE(
        now.WaitForLog(absl::StrCat("container ", id, " restored from holder"), absl::Seconds(5)))
        << now.Stderr();
    ASSERT_TRUE(now.WaitForDecisions(id, every_loop(20), absl::Seconds(10)))
        << "restart " << r << ": a loop made no progress; agent:\n"
        << now.Stderr();
  }
  std::ofstream(c->rootfs() + "/tmp/stop") << "stop\n";
  ExitInfo e = (*run)->Wait(absl::Seconds(30));
  const std::string out = (*run)->StdoutText() + (*run)->StderrText();
  ASSERT_EQ(e.exit_code, 0) << e.ToString() << "\n" << out;
  int orphans = 0;
  for (auto& a : agents) {
    for (const auto& l : absl::StrSplit(a->Stderr(), '\n')) {
      if (absl::string_view(l).find("never answered; restarted") == absl::string_view::npos)
        continue;
      orphans += 1;
    }
  }
  int calls = 0;
  for (int k = 0; k < kLoops; ++k) calls += std::max(0, Field(out, absl::StrCat("L", k)));
  const int enosys = Field(out, "enosys");
  const int eperm = Field(out, "eperm");
  RecordProperty("flood_trapped_mkdirs", calls);
  RecordProperty("flood_enosys", enosys);
  RecordProperty("flood_eperm", eperm);
  RecordProperty("flood_orphan_recoveries", orphans);
  printf(
      "restart_e2e flood: %d restarts, %d trapped mkdirs, eperm=%d enosys=%d, "
      "orphan recoveries logged=%d\n",
      kRestarts, calls, eperm, enosys, orphans);
  EXPECT_EQ(enosys, 0) << out;
  EXPECT_EQ(eperm, calls) << out;
}

bool WaitForExit(pid_t pid, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

// SIGTERM with a container: the holder keeps it and the log says how to
// release it. SIGTERM with none left: the holder exits too.
TEST_F(RestartE2ETest, CleanStopEndsTheHolderOnlyWhenItKeepsNothing) {
  auto a = StartAgent();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE((*a)->WaitForLog("holder: connected to " + holder_socket_, absl::Seconds(5)));
  const std::string id = UniqueContainerId("e2e-cleanstop");
  auto c = MakeContainer(id, (*a)->socket_path(), kMkdirThenAgainOnGo);
  ASSERT_NE(c, nullptr);
  auto run = c->Start();
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_TRUE((*run)->WaitForStdout("ready", absl::Seconds(30))) << (*a)->Stderr();
  const pid_t holder = HolderPid(holder_socket_);
  ASSERT_GT(holder, 0) << "no holder pid in " << holder_socket_ << ".log";

  (*a)->Stop();
  EXPECT_THAT((*a)->Stderr(),
              HasSubstr(absl::StrCat("holder: keeps 1 container(s) (pid ", holder)));
  EXPECT_THAT((*a)->Stderr(), HasSubstr(absl::StrCat("stop the holder (kill ", holder, ")")));
  EXPECT_EQ(kill(holder, 0), 0) << "the holder keeps the container";

  auto b = StartAgent();  // takes the container back and answers it
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(
      (*b)->WaitForLog(absl::StrCat("container ", id, " restored from holder"), absl::Seconds(10)))
      << (*b)->Stderr();
  std::ofstream(c->rootfs() + "/tmp/go") << "go\n";
  ExitInfo e = (*run)->Wait(absl::Seconds(30));
  EXPECT_EQ(e.exit_code, 0) << e.ToString();
  EXPECT_THAT((*run)->StdoutText(), HasSubstr("after_rc=1"));
  ASSERT_TRUE((*b)->WaitForLog(absl::StrCat("container ", id, " removed"), absl::Seconds(15)))
      << (*b)->Stderr();
  // The removal's DEL is fire and forget; the clean stop's request follows
  // it on the same connection, so the holder sees it first.
  (*b)->Stop();
  EXPECT_THAT((*b)->Stderr(), HasSubstr(absl::StrCat("holder: no containers left; the holder (pid ",
                                                     holder, ") exits")));
  EXPECT_TRUE(WaitForExit(holder, absl::Seconds(10))) << "holder pid " << holder << " still runs";
  std::ifstream f(holder_socket_ + ".log");
  std::string log((std::istreambuf_iterator<char>(f)), {});
  EXPECT_THAT(log, HasSubstr("holder: exiting: the agent stopped with no containers left"));
}

TEST_F(RestartE2ETest, DeadHolderDegradesToEnosysWithAWarning) {
  auto a = StartAgent();
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string id = UniqueContainerId("e2e-noholder");
  auto c = MakeContainer(id, (*a)->socket_path(), kMkdirThenAgainOnGo);
  ASSERT_NE(c, nullptr);
  auto run = c->Start();
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_TRUE((*run)->WaitForStdout("ready", absl::Seconds(30))) << (*a)->Stderr();
  EXPECT_THAT((*run)->StdoutText(), HasSubstr("Operation not permitted"));

  pid_t holder = HolderPid(holder_socket_);
  ASSERT_GT(holder, 0) << "no holder pid in " << holder_socket_ << ".log";
  ASSERT_EQ(kill(holder, SIGKILL), 0);
  ASSERT_TRUE((*a)->WaitForLog("holder gone: restarts will lose containers", absl::Seconds(5)))
      << (*a)->Stderr();
  // Warned once (other lines may quote a failed request's "holder gone").
  EXPECT_EQ((*a)->CountLog("holder gone: restarts will lose containers"), 1) << (*a)->Stderr();

  (*a)->Kill();
  std::ofstream(c->rootfs() + "/tmp/go") << "go\n";
  ExitInfo e = (*run)->Wait(absl::Seconds(30));
  const std::string out = (*run)->StdoutText() + (*run)->StderrText();
  EXPECT_EQ(e.exit_code, 0) << e.ToString() << out;
  EXPECT_THAT(out, HasSubstr("after_rc=1")) << out;
  EXPECT_THAT(out, HasSubstr("Function not implemented")) << out;
}

}  // namespace
}  // namespace seccomp_agent::integration
