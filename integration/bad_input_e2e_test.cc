// Hostile or broken peers on the real agent's socket. Every bad handoff must
// be refused with exactly one "handoff rejected: peer pid <pid>" line, an
// idle connection must block nobody, and afterwards the same agent must
// still serve real runc and crun containers.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/testing/trapped_child.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/container.h"
#include "integration/harness/unix_socket.h"

namespace seccomp_agent::integration {
namespace {

namespace fs = std::filesystem;
using ::seccomp_agent::testing::TrappedChild;
using ::testing::HasSubstr;

constexpr absl::Duration kRejectWait = absl::Seconds(5);

class BadInputE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root (containers, setresuid)";
    AgentOptions o;
    o.policy_yaml = kTestPolicyYaml;
    o.allowed_uids = "0";
    auto a = Agent::Start(o);
    ASSERT_TRUE(a.ok()) << a.status();
    agent_ = *std::move(a);
  }

  // A real seccomp user-notification listener (from a parked child). Call it
  // before Connect(): the forked child inherits open connections.
  int Listener() {
    auto c = TrappedChild::Spawn({"getppid"}, [] { return 0; });
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return -1;
    children_.push_back(std::make_unique<TrappedChild>(*std::move(c)));
    return children_.back()->listener();
  }

  UniqueFd Connect() {
    auto s = ConnectUnix(agent_->socket_path());
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : UniqueFd();
  }

  // Waits for the next rejection of `peer`; returns its log line.
  std::string ExpectRejected(const std::string& what, pid_t peer) {
    const std::string needle = absl::StrCat("handoff rejected: peer pid ", peer, ":");
    const int want = ++rejections_[peer];
    EXPECT_TRUE(agent_->WaitForLogCount(needle, want, kRejectWait))
        << what << ": no rejection #" << want << " for peer pid " << peer << "; agent:\n"
        << agent_->Stderr();
    std::string line;  // the latest one
    for (const auto& l : Lines()) {
      if (l.find(needle) != std::string::npos) line = l;
    }
    std::cerr << what << " -> " << line << "\n";
    return line;
  }

  std::vector<std::string> Lines() {
    std::vector<std::string> v;
    std::string s = agent_->Stderr();
    size_t start = 0, nl;
    while ((nl = s.find('\n', start)) != std::string::npos) {
      v.push_back(s.substr(start, nl - start));
      start = nl + 1;
    }
    return v;
  }

  // The agent hangs up on a refused connection (read gives EOF or reset).
  void ExpectClosedByAgent(const std::string& what, int sock) {
    pollfd p = {sock, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1) << what << ": agent kept the connection open";
    char buf[256];
    EXPECT_LE(read(sock, buf, sizeof(buf)), 0) << what << ": agent sent a reply";
  }

  // Sends `bytes` + `fds` on a fresh connection and expects a rejection and
  // a hang-up.
  // `reason` is a fragment the rejection line must contain, so a refusal
  // for the wrong reason does not count.
  void SendBad(const std::string& what, const std::string& bytes, const std::vector<int>& fds,
               const std::string& reason) {
    SCOPED_TRACE(what);
    UniqueFd s = Connect();
    ASSERT_TRUE(s.valid());
    // The agent may hang up mid-send (oversize): EPIPE/ECONNRESET are fine.
    absl::Status st = SendWithFds(s.get(), bytes, fds);
    if (!st.ok()) std::cerr << what << ": send: " << st << "\n";
    EXPECT_THAT(ExpectRejected(what, getpid()), HasSubstr(reason));
    ExpectClosedByAgent(what, s.get());
  }

  std::string ValidMessage(const std::vector<std::string>& names = {"seccompFd"}) {
    return RuntimeMessageJson(UniqueContainerId("e2e-fake"), getpid(), names);
  }

  std::unique_ptr<Agent> agent_;
  std::vector<std::unique_ptr<TrappedChild>> children_;
  std::map<pid_t, int> rejections_;
};

TEST_F(BadInputE2ETest, RejectsEachBadHandoffAndStillServesContainers) {
  // Held open, silent, through every step below and the real containers.
  UniqueFd idle = Connect();
  ASSERT_TRUE(idle.valid());

  SendBad("not JSON", "hello, this is not JSON\n", {}, "JSON");
  SendBad("deeply nested JSON",
          absl::StrCat("{\"a\":", std::string(200, '['), std::string(200, ']'), "}"), {Listener()},
          "nested deeper");
  SendBad("oversize (>64 KiB)",
          absl::StrCat("{\"ociVersion\":\"", std::string(70 * 1024, 'a'), "\"}"), {Listener()},
          "larger than");
  SendBad("zero fds", ValidMessage(), {}, "received 0");
  SendBad("two fds", ValidMessage({"seccompFd", "seccompFd"}), {Listener(), Listener()},
          "received 2");
  {
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    UniqueFd r(p[0]), w(p[1]);
    SendBad("non-seccomp fd (pipe)", ValidMessage(), {r.get()}, "not a seccomp listener");
  }
  SendBad("wrong fds names", ValidMessage({"notSeccompFd"}), {Listener()}, "seccompFd");
  SendBad("valid JSON, wrong shape (pid is a string)",
          R"({"ociVersion":"1.0.2-dev","fds":["seccompFd"],"pid":"12","state":{}})", {Listener()},
          "pid");

  {
    SCOPED_TRACE("truncated JSON then close");
    UniqueFd s = Connect();
    ASSERT_TRUE(SendWithFds(s.get(), R"({"ociVersion":"1.0.2-dev","fds":["secc)", {}).ok());
    s.reset();
    EXPECT_THAT(ExpectRejected("truncated JSON then close", getpid()), HasSubstr("closed"));
  }
  {
    SCOPED_TRACE("closed mid-message with a listener fd");
    const std::string msg = ValidMessage();
    // Before connecting: the parked child is forked and would inherit (and
    // keep open) a connection made earlier.
    const int listener = Listener();
    UniqueFd s = Connect();
    ASSERT_TRUE(SendWithFds(s.get(), msg.substr(0, msg.size() / 2), {listener}).ok());
    absl::SleepFor(absl::Milliseconds(50));  // the agent has the first half and the fd
    s.reset();
    EXPECT_THAT(ExpectRejected("closed mid-message", getpid()), HasSubstr("closed"));
  }
  {
    SCOPED_TRACE("peer uid not allowed");
    // Let uid 65534 reach the socket at all: the uid check must hold even
    // when the file permissions are too open.
    const std::string dir = fs::path(agent_->socket_path()).parent_path();
    ASSERT_EQ(chmod(fs::path(dir).parent_path().c_str(), 0755), 0);
    ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
    ASSERT_EQ(chmod(agent_->socket_path().c_str(), 0666), 0);
    const std::string msg = ValidMessage();
    const std::string path = agent_->socket_path();
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(10);
      auto s = ConnectUnix(path);
      if (!s.ok()) _exit(11);
      (void)SendWithFds(s->get(), msg, {});
      pollfd p = {s->get(), POLLIN, 0};
      if (poll(&p, 1, 5000) != 1) _exit(12);  // the agent must hang up
      _exit(0);
    }
    std::string line = ExpectRejected("peer uid 65534", child);
    EXPECT_THAT(line, HasSubstr("65534"));
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "uid-65534 child status " << status << " (10/11: setup, 12: not hung up)";
  }

  // Exactly the refusals we caused: the idle connection was not refused.
  EXPECT_EQ(agent_->CountLog(absl::StrCat("handoff rejected: peer pid ", getpid(), ":")), 10)
      << agent_->Stderr();
  EXPECT_FALSE(agent_->exited());

  // The same agent still serves real containers (idle connection still open).
  for (Runtime rt : {Runtime::kRunc, Runtime::kCrun}) {
    SCOPED_TRACE(RuntimeName(rt));
    const std::string id = UniqueContainerId(absl::StrCat("e2e-after-bad-", RuntimeName(rt)));
    auto w = RunWorkload(rt, id, agent_->socket_path(), "mkdir /forbidden/x; echo mkdir_rc=$?",
                         DefaultTrappedSyscalls());
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ(w->result.exit.exit_code, 0) << w->result.Describe() << "\nagent:\n"
                                           << agent_->Stderr();
    EXPECT_THAT(w->output(), HasSubstr("Operation not permitted"));
    EXPECT_THAT(w->output(), HasSubstr("mkdir_rc=1"));
    EXPECT_FALSE(fs::exists(w->container->rootfs() + "/forbidden/x"));
    EXPECT_TRUE(agent_->WaitForLog(absl::StrCat("container ", id, " registered"), kRejectWait));
  }

  // The idle connection was never answered or closed by the agent.
  pollfd p = {idle.get(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0) << "agent closed or wrote to the idle connection";
  ExitInfo e = agent_->Stop();
  EXPECT_EQ(e.exit_code, 0) << e.ToString();
}

}  // namespace
}  // namespace seccomp_agent::integration
