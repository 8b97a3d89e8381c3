// Proves the harness's bundles without the agent: runc and crun connect to
// linux.seccomp.listenerPath and hand over the OCI state plus one seccomp
// listener fd; once that fd is closed, trapped syscalls fail with ENOSYS.
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/harness/container.h"
#include "integration/harness/subprocess.h"
#include "integration/harness/unix_socket.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::integration {
namespace {

using ::testing::HasSubstr;

class BundleHandoffTest : public ::testing::TestWithParam<Runtime> {
 protected:
  void SetUp() override { ASSERT_EQ(geteuid(), 0u) << "needs root (containers)"; }
};

TEST_P(BundleHandoffTest, RuntimeSendsStateAndListenerFd) {
  auto dir = TempDir::Make("sa-fake");
  ASSERT_TRUE(dir.ok()) << dir.status();
  const std::string sock = dir->path() + "/listener.sock";
  auto listener = FakeListener::Create(sock);
  ASSERT_TRUE(listener.ok()) << listener.status();

  const std::string id = UniqueContainerId(absl::StrCat("e2e-handoff-", RuntimeName(GetParam())));
  ContainerConfig cfg;
  cfg.args = {"sh", "-c", "mkdir /forbidden/x; echo mkdir_rc=$?"};
  cfg.seccomp = SeccompConfig{sock, "meta-" + id, {"mkdir", "mkdirat"}};
  auto ctr = Container::Create(GetParam(), id, cfg);
  ASSERT_TRUE(ctr.ok()) << ctr.status();
  auto run = (*ctr)->Start();
  ASSERT_TRUE(run.ok()) << run.status();

  auto h = (*listener)->Next(absl::Seconds(30));
  ASSERT_TRUE(h.ok()) << h.status() << "\nruntime stderr:\n" << (*run)->StderrText();
  nlohmann::json j = nlohmann::json::parse(h->bytes, nullptr, false);
  ASSERT_TRUE(j.is_object()) << h->bytes;
  EXPECT_EQ(j["fds"], nlohmann::json::array({"seccompFd"})) << h->bytes;
  EXPECT_EQ(j["state"]["id"], id) << h->bytes;
  EXPECT_EQ(j["state"]["status"], "creating") << h->bytes;
  EXPECT_EQ(j.value("metadata", ""), "meta-" + id) << h->bytes;
  ASSERT_TRUE(j["pid"].is_number_integer()) << h->bytes;
  EXPECT_GT(j["pid"].get<int64_t>(), 1);
  EXPECT_EQ(h->peer_uid, 0u);
  ASSERT_EQ(h->fds.size(), 1u);
  EXPECT_EQ(FdTarget(h->fds[0].get()), "anon_inode:seccomp notify");

  // Nobody will answer: closing the listener makes the trapped mkdir fail
  // with ENOSYS, and the container runs on.
  h->fds.clear();
  ExitInfo e = (*run)->Wait(absl::Seconds(30));
  const std::string out = (*run)->StdoutText() + (*run)->StderrText();
  EXPECT_EQ(e.exit_code, 0) << e.ToString() << "\n" << out;
  EXPECT_THAT(out, HasSubstr("Function not implemented"));
  EXPECT_THAT(out, HasSubstr("mkdir_rc=1"));
  EXPECT_FALSE(std::filesystem::exists((*ctr)->rootfs() + "/forbidden/x"));
}

TEST_P(BundleHandoffTest, MissingListenerSocketFailsTheStart) {
  auto dir = TempDir::Make("sa-fake");
  ASSERT_TRUE(dir.ok()) << dir.status();
  const std::string id = UniqueContainerId(absl::StrCat("e2e-nosock-", RuntimeName(GetParam())));
  ContainerConfig cfg;
  cfg.args = {"sh", "-c", "echo should-not-run"};
  cfg.seccomp = SeccompConfig{dir->path() + "/absent.sock", std::nullopt, {"mkdir"}};
  auto ctr = Container::Create(GetParam(), id, cfg);
  ASSERT_TRUE(ctr.ok()) << ctr.status();
  ProcessResult r = (*ctr)->Run(absl::Seconds(30));
  EXPECT_FALSE(r.exit.timed_out) << r.Describe();
  EXPECT_NE(r.exit.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("should-not-run"))) << r.Describe();
}

INSTANTIATE_TEST_SUITE_P(Runtimes, BundleHandoffTest,
                         ::testing::Values(Runtime::kRunc, Runtime::kCrun),
                         [](const auto& info) { return std::string(RuntimeName(info.param)); });

}  // namespace
}  // namespace seccomp_agent::integration
