// Substitutions end to end on the host kernel (emulation backend): the real
// agent, real containers.
//  * runc: `cat /etc/hostname` shows the redirected file's content;
//  * crun: a written line containing a secret lands redacted in the file
//    (runc refuses NOTIFY on write, so this one is crun only);
//  * runc and crun: a bind to port 80 inside the container lands on 8080.
#include <unistd.h>

#include <fstream>
#include <iterator>
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

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPolicy[] = R"(
version: 1
default_action: {allow: {}}
redirect_roots: [/etc]
injection: {mode: auto}
rules:
  - name: hostname-redirect
    match: {syscalls: [openat, open], args: {path: "/etc/hostname"}}
    action: {redirect_open: {exact: {"/etc/hostname": "/etc/hostname.alt"}}}
  - name: redact-secrets
    match: {syscalls: [write]}
    action: {replace_write: {redact_regex: "secret-[0-9]+", redaction: "[REDACTED]"}}
  - name: port-80-to-8080
    match: {syscalls: [bind], args: {sockaddr: {family: AF_INET, port: 80}}}
    action: {rewrite_bind: {map: {"0.0.0.0:80": "127.0.0.1:8080"}}}
)";

class SubstitutionE2ETest : public ::testing::TestWithParam<Runtime> {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root (containers)";
    AgentOptions o;
    o.policy_yaml = kPolicy;
    auto a = Agent::Start(o);
    ASSERT_TRUE(a.ok()) << a.status();
    agent_ = *std::move(a);
  }

  WorkloadRun Run(const std::string& name, const std::string& script,
                  const std::vector<std::string>& syscalls) {
    id_ = UniqueContainerId(absl::StrCat("e2e-sub-", name, "-", RuntimeName(GetParam())));
    auto w = RunWorkload(GetParam(), id_, agent_->socket_path(), script, syscalls);
    EXPECT_TRUE(w.ok()) << w.status();
    if (!w.ok()) return WorkloadRun{};
    EXPECT_FALSE(w->result.exit.timed_out) << w->result.Describe() << "\nagent:\n"
                                           << agent_->Stderr();
    return *std::move(w);
  }

  // The decision of rule `rule`, waiting for it to be logged.
  nlohmann::json DecisionOf(const std::string& rule) {
    nlohmann::json found;
    agent_->WaitForDecisions(
        id_,
        [&](const std::vector<nlohmann::json>& ds) {
          for (const auto& d : ds) {
            if (d.value("rule", "") == rule) {
              found = d;
              return true;
            }
          }
          return false;
        },
        absl::Seconds(5));
    return found;
  }

  std::unique_ptr<Agent> agent_;
  std::string id_;
};

TEST_P(SubstitutionE2ETest, RedirectOpenShowsTheRedirectedFile) {
  WorkloadRun w =
      Run("redirect", "echo redirected-by-agent > /etc/hostname.alt && cat /etc/hostname",
          {"openat", "open"});
  EXPECT_EQ(w.result.exit.exit_code, 0) << w.result.Describe();
  EXPECT_THAT(w.result.out, HasSubstr("redirected-by-agent"));
  EXPECT_THAT(w.result.out, Not(HasSubstr("e2e-host")));  // the real hostname file
  nlohmann::json d = DecisionOf("hostname-redirect");
  ASSERT_FALSE(d.is_null()) << agent_->Stderr();
  EXPECT_EQ(d["action"], "redirect_open");
  EXPECT_EQ(d["backend"], "emulation");  // the host kernel has no NOTIF_INJECT
  EXPECT_THAT(d["result"].get<std::string>(), HasSubstr("fd "));
}

TEST_P(SubstitutionE2ETest, BindToPort80LandsOn8080) {
  // busybox nc binds the listening socket; netstat shows where it landed.
  WorkloadRun w = Run("bind",
                      "mkdir -p /tmp/www && httpd -p 0.0.0.0:80 -h /tmp/www && sleep 0.5 && "
                      "netstat -ltn",
                      {"bind"});
  EXPECT_EQ(w.result.exit.exit_code, 0) << w.result.Describe();
  EXPECT_THAT(w.result.out, HasSubstr("127.0.0.1:8080"));
  EXPECT_THAT(w.result.out, Not(HasSubstr(":80 ")));
  nlohmann::json d = DecisionOf("port-80-to-8080");
  ASSERT_FALSE(d.is_null()) << agent_->Stderr();
  EXPECT_EQ(d["action"], "rewrite_bind");
  EXPECT_EQ(d["result"], "0");
}

INSTANTIATE_TEST_SUITE_P(Runtimes, SubstitutionE2ETest,
                         ::testing::Values(Runtime::kRunc, Runtime::kCrun),
                         [](const auto& info) { return std::string(RuntimeName(info.param)); });

// crun only: runc 1.1.5 refuses SCMP_ACT_NOTIFY on write.
class RedactionE2ETest : public SubstitutionE2ETest {};

TEST_P(RedactionE2ETest, SecretIsRedactedInTheWrittenFile) {
  WorkloadRun w = Run("redact", "echo 'token secret-12345 end' > /tmp/out", {"write"});
  EXPECT_EQ(w.result.exit.exit_code, 0) << w.result.Describe();
  ASSERT_NE(w.container, nullptr);
  // What reached the file, read on the host: the task's own bytes never did.
  std::ifstream in(w.container->rootfs() + "/tmp/out");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "token [REDACTED] end\n");
  nlohmann::json d = DecisionOf("redact-secrets");
  ASSERT_FALSE(d.is_null()) << agent_->Stderr();
  EXPECT_EQ(d["action"], "replace_write");
  EXPECT_EQ(d["backend"], "emulation");
}

INSTANTIATE_TEST_SUITE_P(Crun, RedactionE2ETest, ::testing::Values(Runtime::kCrun),
                         [](const auto& info) { return std::string(RuntimeName(info.param)); });

}  // namespace
}  // namespace seccomp_agent::integration
