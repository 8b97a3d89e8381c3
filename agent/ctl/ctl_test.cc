// seccomp-agentctl, the real binary, against a real admin socket.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "agent/admin/test_fixture.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::ctl {
namespace {

struct Result {
  int exit_code = -1;
  std::string out, err;
};

std::string CtlPath() {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* ws = getenv("TEST_WORKSPACE");
  return std::string(srcdir ? srcdir : ".") + "/" + (ws ? ws : "seccomp_agent") +
         "/agent/ctl/seccomp-agentctl";
}

// Runs the CLI with a 30 s bound.
Result RunCtl(const std::vector<std::string>& args) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return {};
  std::vector<std::string> argv_s = {CtlPath()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    alarm(30);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  Result r;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, 35000) <= 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, n);
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

class CtlTest : public admin::testing::AdminFixture {
 protected:
  void SetUp() override {
    AdminFixture::SetUp();
    if (HasFatalFailure()) return;
    StartServer();
  }
  std::string Sock() { return "--socket=" + path_; }
};

TEST_F(CtlTest, ListTable) {
  Result r = RunCtl({Sock(), "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0].rfind("CONTAINER     PID   RUNTIME  NAMESPACE  POD    NAME   METADATA", 0), 0u)
      << r.out;
  EXPECT_EQ(lines[1].rfind(
                "0123456789ab  4242  runc     prod       web-0  nginx  profile=web  -       3m", 0),
            0u)
      << r.out;
  EXPECT_EQ(lines[2].rfind(
                "plain         77    crun     -          -      -      -            -       5s", 0),
            0u)
      << r.out;
}

TEST_F(CtlTest, ListJsonAndNamespaceFilter) {
  Result r = RunCtl({Sock(), "--json", "--namespace=prod", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["containers"].size(), 1u);
  EXPECT_EQ(j["containers"][0]["id"], "0123456789abcdef0123");
  EXPECT_EQ(j["containers"][0]["init_pid"], 4242);
  EXPECT_EQ(j["containers"][0]["pod_name"], "web-0");
  EXPECT_EQ(j["containers"][0]["container_name"], "nginx");
  EXPECT_EQ(j["containers"][0]["counters"]["denied"], "3");
}

TEST_F(CtlTest, StatsTableAndJson) {
  Result r = RunCtl({Sock(), "stats"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("active containers:           2\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("notifications:               12\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  not_listener:              3\n"), std::string::npos) << r.out;
  r = RunCtl({Sock(), "--json", "stats"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["active_containers"], "2");
  EXPECT_EQ(j["handoff"]["rejected"]["not_listener"], "3");
  EXPECT_EQ(j["policy"]["rules"], 3);
}

TEST_F(CtlTest, ReloadOkAndError) {
  Result r = RunCtl({Sock(), "reload"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "policy reloaded: /etc/seccomp-agent/policy.yaml (4 rules)\n");
  {
    std::lock_guard<std::mutex> l(mu_);
    reload_error_ = absl::InvalidArgumentError("bad.yaml:1: not a policy");
  }
  r = RunCtl({Sock(), "reload"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("reload: bad.yaml:1: not a policy"), std::string::npos) << r.err;
}

TEST_F(CtlTest, HealthExitCode) {
  Result r = RunCtl({Sock(), "health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  server_->SetServing(false);
  r = RunCtl({Sock(), "health"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "NOT_SERVING\n");
}

TEST_F(CtlTest, WatchJsonStopsAfterCount) {
  ContainerInfo c;
  c.id = "watched";
  c.pod_namespace = "prod";
  c.pod_name = "p";
  std::atomic<bool> stop{false};
  // The engine side: keep deciding until the CLI has what it wants.
  std::thread engine([&] {
    while (!stop) {
      Publish(c, "mkdir", "deny");
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  Result r = RunCtl({Sock(), "--json", "--count=3", "--container=watched", "watch"});
  stop = true;
  engine.join();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 3u) << r.out;
  int decisions = 0;
  for (const auto& l : lines) {
    auto j = nlohmann::json::parse(l);
    if (j.contains("decision")) {
      ++decisions;
      EXPECT_EQ(j["decision"]["container_id"], "watched");
      EXPECT_EQ(j["decision"]["syscall"], "mkdir");
      EXPECT_EQ(j["decision"]["result"], "EPERM");
    }
  }
  EXPECT_EQ(decisions, 3);
}

TEST_F(CtlTest, WatchTable) {
  ContainerInfo c;
  c.id = "watched";
  std::atomic<bool> stop{false};
  std::thread engine([&] {
    while (!stop) {
      Publish(c, "mkdir", "deny");
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  Result r = RunCtl({Sock(), "--count=1", "watch"});
  stop = true;
  engine.join();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[0].rfind("TIME             CONTAINER     POD", 0), 0u) << r.out;
  EXPECT_NE(
      lines[1].find("watched       -                               99       mkdir         deny"),
      std::string::npos)
      << r.out;
}

TEST_F(CtlTest, NoAgentFailsWithinTimeout) {
  Result r = RunCtl({"--socket=" + dir_ + "/absent.sock", "--timeout=1s", "list"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("list:"), std::string::npos) << r.err;
  r = RunCtl({"--socket=" + dir_ + "/absent.sock", "--timeout=1s", "watch"});
  EXPECT_EQ(r.exit_code, 1);
  r = RunCtl({Sock(), "frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace seccomp_agent::ctl
