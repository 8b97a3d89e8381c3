// The real agent deciding real containers' syscalls: deny by path glob,
// spoofed success, allow, log, and a deny-by-default policy that must still
// let the runtime's own pre-exec calls through. Each case runs under runc and
// under crun.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/container.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::integration {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kLogWait = absl::Seconds(5);

// Decisions for `path` (args.path) among `ds`.
std::vector<nlohmann::json> ForPath(const std::vector<nlohmann::json>& ds,
                                    const std::string& path) {
  std::vector<nlohmann::json> out;
  for (const auto& d : ds) {
    if (d.contains("args") && d["args"].is_object() && d["args"].value("path", "") == path) {
      out.push_back(d);
    }
  }
  return out;
}

std::string Dump(const std::vector<nlohmann::json>& ds) {
  std::string s;
  for (const auto& d : ds) absl::StrAppend(&s, d.dump(), "\n");
  return s.empty() ? "(no decisions)\n" : s;
}

class PolicyE2ETest : public ::testing::TestWithParam<Runtime> {
 protected:
  void SetUp() override { ASSERT_EQ(geteuid(), 0u) << "needs root (containers)"; }

  void StartAgent(const std::string& policy) {
    AgentOptions o;
    o.policy_yaml = policy;
    auto a = Agent::Start(o);
    ASSERT_TRUE(a.ok()) << a.status();
    agent_ = *std::move(a);
  }

  // Runs `script` in a fresh container whose trapped syscalls go to the agent.
  WorkloadRun Run(const std::string& name, const std::string& script,
                  const std::vector<std::string>& syscalls = DefaultTrappedSyscalls()) {
    id_ = UniqueContainerId(absl::StrCat("e2e-", name, "-", RuntimeName(GetParam())));
    auto w = RunWorkload(GetParam(), id_, agent_->socket_path(), script, syscalls);
    EXPECT_TRUE(w.ok()) << w.status();
    if (!w.ok()) return WorkloadRun{};
    EXPECT_FALSE(w->result.exit.timed_out) << w->result.Describe() << "\nagent:\n"
                                           << agent_->Stderr();
    return *std::move(w);
  }

  // The agent logged the registration, naming the runtime.
  void ExpectRegistered() {
    auto line = agent_->WaitForLog(absl::StrCat("container ", id_, " registered: pid "), kLogWait);
    ASSERT_TRUE(line.has_value()) << agent_->Stderr();
    EXPECT_THAT(*line, HasSubstr(absl::StrCat("runtime ", RuntimeName(GetParam()))));
    EXPECT_THAT(*line, HasSubstr("peer pid "));
  }

  // Waits until the decision log holds an entry for `path`; returns them all.
  std::vector<nlohmann::json> DecisionsForPath(const std::string& path) {
    std::vector<nlohmann::json> found;
    agent_->WaitForDecisions(
        id_,
        [&](const std::vector<nlohmann::json>& ds) {
          found = ForPath(ds, path);
          return !found.empty();
        },
        kLogWait);
    return found;
  }

  std::unique_ptr<Agent> agent_;
  std::string id_;
};

TEST_P(PolicyE2ETest, DeniesMkdirByPathGlob) {
  StartAgent(kTestPolicyYaml);
  WorkloadRun w = Run("deny", "mkdir /forbidden/x; echo mkdir_rc=$?");
  ASSERT_NE(w.container, nullptr);
  EXPECT_EQ(w.result.exit.exit_code, 0) << w.result.Describe();
  EXPECT_THAT(w.output(), HasSubstr("Operation not permitted")) << w.result.Describe();
  EXPECT_THAT(w.output(), HasSubstr("mkdir_rc=1"));
  // /forbidden exists and is writable: only the agent stopped the mkdir.
  EXPECT_TRUE(fs::is_directory(w.container->rootfs() + "/forbidden"));
  EXPECT_FALSE(fs::exists(w.container->rootfs() + "/forbidden/x"));
  ExpectRegistered();
  auto ds = DecisionsForPath("/forbidden/x");
  ASSERT_EQ(ds.size(), 1u) << Dump(agent_->DecisionsFor(id_));
  EXPECT_THAT(ds[0].value("syscall", ""), ::testing::AnyOf("mkdir", "mkdirat"));
  EXPECT_EQ(ds[0].value("rule", ""), "no-mkdir-in-forbidden");
  EXPECT_EQ(ds[0].value("action", ""), "deny");
  EXPECT_EQ(ds[0].value("result", ""), "EPERM");
  EXPECT_GT(ds[0].value("pid", 0), 0);
  EXPECT_TRUE(ds[0].contains("latency_ns") && ds[0]["latency_ns"].is_number_integer())
      << ds[0].dump();
  EXPECT_TRUE(ds[0].contains("time") && ds[0]["time"].is_string()) << ds[0].dump();
}

TEST_P(PolicyE2ETest, SpoofsMkdirSuccessWithoutCreatingTheDir) {
  StartAgent(kTestPolicyYaml);
  WorkloadRun w = Run("spoof", "mkdir /fake1; echo mkdir_rc=$?; ls -d /fake1; echo ls_rc=$?");
  ASSERT_NE(w.container, nullptr);
  EXPECT_EQ(w.result.exit.exit_code, 0) << w.result.Describe();
  EXPECT_THAT(w.output(), HasSubstr("mkdir_rc=0")) << w.result.Describe();
  EXPECT_THAT(w.output(), HasSubstr("No such file or directory")) << w.result.Describe();
  EXPECT_THAT(w.output(), Not(HasSubstr("ls_rc=0"))) << w.result.Describe();
  EXPECT_FALSE(fs::exists(w.container->rootfs() + "/fake1"));
  auto ds = DecisionsForPath("/fake1");
  ASSERT_EQ(ds.size(), 1u) << Dump(agent_->DecisionsFor(id_));
  EXPECT_EQ(ds[0].value("rule", ""), "fake-success");
  EXPECT_EQ(ds[0].value("action", ""), "return");
  EXPECT_EQ(ds[0].value("result", ""), "0");
}

TEST_P(PolicyE2ETest, AllowsUnmatchedMkdir) {
  StartAgent(kTestPolicyYaml);
  WorkloadRun w = Run("allow", "mkdir /tmp/ok; echo mkdir_rc=$?");
  ASSERT_NE(w.container, nullptr);
  EXPECT_EQ(w.result.exit.exit_code, 0) << w.result.Describe();
  EXPECT_THAT(w.output(), HasSubstr("mkdir_rc=0")) << w.result.Describe();
  EXPECT_TRUE(fs::is_directory(w.container->rootfs() + "/tmp/ok"));
  auto ds = DecisionsForPath("/tmp/ok");
  ASSERT_EQ(ds.size(), 1u) << Dump(agent_->DecisionsFor(id_));
  EXPECT_EQ(ds[0].value("rule", ""), "default");
  EXPECT_EQ(ds[0].value("action", ""), "allow");
  EXPECT_EQ(ds[0].value("result", ""), "continue");
}

TEST_P(PolicyE2ETest, LogsOpenAndLetsItRun) {
  StartAgent(kTestPolicyYaml);
  WorkloadRun w = Run("log", "cat /etc/hostname; echo cat_rc=$?");
  ASSERT_NE(w.container, nullptr);
  EXPECT_EQ(w.result.exit.exit_code, 0) << w.result.Describe();
  EXPECT_THAT(w.result.out, HasSubstr("e2e-host\ncat_rc=0")) << w.result.Describe();
  auto ds = DecisionsForPath("/etc/hostname");
  ASSERT_GE(ds.size(), 1u) << Dump(agent_->DecisionsFor(id_));
  EXPECT_EQ(ds[0].value("syscall", ""), "openat");
  EXPECT_EQ(ds[0].value("rule", ""), "audit-opens");
  EXPECT_EQ(ds[0].value("action", ""), "log");
}

// Deny by default with openat trapped: the runtime's own pre-exec openat
// calls must still pass (runc traps them), or the container never starts;
// the workload's own openat and mkdir outside the allowed path are denied.
TEST_P(PolicyE2ETest, DenyByDefaultStillStartsTheContainer) {
  StartAgent(R"(version: 1
default_action: {deny: {errno: EPERM}}
rules:
  - name: allow-tmp-mkdir
    match: {syscalls: [mkdir, mkdirat], args: {path: "/tmp/**"}}
    action: {allow: {}}
)");
  WorkloadRun w = Run("denydefault",
                      "echo started; cat /etc/hostname; echo cat_rc=$?; "
                      "mkdir /tmp/allowed; echo tmp_rc=$?; mkdir /elsewhere; echo other_rc=$?");
  ASSERT_NE(w.container, nullptr);
  EXPECT_EQ(w.result.exit.exit_code, 0) << w.result.Describe() << "\nagent:\n" << agent_->Stderr();
  EXPECT_THAT(w.result.out, HasSubstr("started")) << w.result.Describe();
  EXPECT_THAT(w.result.out, HasSubstr("cat_rc=1")) << w.result.Describe();
  EXPECT_THAT(w.result.out, Not(HasSubstr("e2e-host")));
  EXPECT_THAT(w.result.err, HasSubstr("Operation not permitted")) << w.result.Describe();
  EXPECT_THAT(w.result.out, HasSubstr("tmp_rc=0"));
  EXPECT_THAT(w.result.out, HasSubstr("other_rc=1"));
  EXPECT_TRUE(fs::is_directory(w.container->rootfs() + "/tmp/allowed"));
  EXPECT_FALSE(fs::exists(w.container->rootfs() + "/elsewhere"));

  auto ds = DecisionsForPath("/etc/hostname");
  ASSERT_GE(ds.size(), 1u) << Dump(agent_->DecisionsFor(id_));
  EXPECT_EQ(ds[0].value("rule", ""), "default");
  EXPECT_EQ(ds[0].value("action", ""), "deny");
  EXPECT_EQ(ds[0].value("result", ""), "EPERM");
  if (GetParam() == Runtime::kRunc) {
    // runc init's own openat (/proc/self/fd/N) is trapped before the exec.
    int runtime_init = 0;
    for (const auto& d : agent_->DecisionsFor(id_)) {
      if (d.value("rule", "") == "runtime-init") {
        ++runtime_init;
        EXPECT_NE(d.value("result", ""), "EPERM") << d.dump();
      }
    }
    EXPECT_GE(runtime_init, 1) << Dump(agent_->DecisionsFor(id_));
  }
}

INSTANTIATE_TEST_SUITE_P(Runtimes, PolicyE2ETest, ::testing::Values(Runtime::kRunc, Runtime::kCrun),
                         [](const auto& info) { return std::string(RuntimeName(info.param)); });

}  // namespace
}  // namespace seccomp_agent::integration
