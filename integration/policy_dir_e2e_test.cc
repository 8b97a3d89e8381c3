// Named policies end to end (README "Named policies"): one agent with
// --hook_config (whose policy_dir it shares with the OCI hook) serving a
// runc and a crun container at once, each bound to its own policy; a reload
// of one policy reaches its container at the next call and leaves the other
// alone, neither restarted; a plugin added to a policy by a reload (the
// directory watch) decides that container's next call. And a profile the
// real hook wrote: the kernel rules and the agent's rules come from the
// same NAME.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/container.h"
#include "integration/harness/test_util.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::integration {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kTenantA[] = R"(version: 1
default_action: {allow: {}}
rules:
  - name: a-deny
    match: {syscalls: [mkdir, mkdirat], args: {path: /x}}
    action: {deny: {errno: EPERM}}
)";
constexpr char kTenantB[] = R"(version: 1
default_action: {allow: {}}
rules:
  - name: b-spoof
    match: {syscalls: [mkdir, mkdirat], args: {path: /x}}
    action: {return: {value: 0}}
)";
constexpr char kTenantBEacces[] = R"(version: 1
default_action: {allow: {}}
rules:
  - name: b-eacces
    match: {syscalls: [mkdir, mkdirat], args: {path: /x}}
    action: {deny: {errno: EACCES}}
)";
// Kernel-decidable rmdir (compiled into the profile by the hook) and a path
// rule only the agent can decide.
constexpr char kTenantH[] = R"(version: 1
default_action: {allow: {}}
rules:
  - {name: h-no-rmdir, match: {syscalls: [rmdir]}, action: {deny: {errno: EROFS}}}
  - name: h-mkdir
    match: {syscalls: [mkdir, mkdirat], args: {path: /x}}
    action: {deny: {errno: EACCES}}
)";

// Runs `mkdir /x` once per /tmp/goN the test creates and writes "RC ERR"
// to /tmp/rN; ends at /tmp/stop. Only mkdir traps.
constexpr char kLoop[] =
    "i=0; while [ ! -e /tmp/stop ]; do "
    "if [ -e /tmp/go$i ]; then mkdir /x 2>/tmp/err; rc=$?; "
    "echo \"$rc $(cat /tmp/err)\" > /tmp/r$i.tmp; mv /tmp/r$i.tmp /tmp/r$i; i=$((i+1)); fi; "
    "usleep 20000; done";

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes like an editor or kubectl: a temp file renamed over the old one.
void WriteAtomically(const std::string& path, const std::string& text) {
  std::ofstream(path + ".tmp") << text;
  fs::rename(path + ".tmp", path);
}

class PolicyDirE2ETest : public ::testing::TestWithParam<Runtime> {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "needs root (containers)";
    auto d = TempDir::Make("sa-pdir");
    ASSERT_TRUE(d.ok()) << d.status();
    dir_ = std::make_unique<TempDir>(*std::move(d));
    policies_ = dir_->path() + "/policies";
    ASSERT_TRUE(fs::create_directory(policies_));
    hook_json_ = dir_->path() + "/hook.json";
    WriteHookJson("/run/seccomp-agent/agent.sock");  // the socket is known after the start
  }

  void WriteHookJson(const std::string& agent_socket) {
    WriteAtomically(
        hook_json_,
        nlohmann::json{{"agent_socket", agent_socket}, {"policy_dir", policies_}}.dump());
  }

  // The agent takes policy_dir from the hook's config: one setting.
  void StartAgent() {
    AgentOptions o;
    o.extra_flags = {"--hook_config=" + hook_json_};
    auto a = Agent::Start(o);
    ASSERT_TRUE(a.ok()) << a.status();
    agent_ = *std::move(a);
    WriteHookJson(agent_->socket_path());
  }

  std::vector<nlohmann::json> MkdirX(const std::string& id) {
    std::vector<nlohmann::json> out;
    for (const auto& d : agent_->DecisionsFor(id)) {
      if (d.value("args", nlohmann::json::object()).value("path", "") == "/x") out.push_back(d);
    }
    return out;
  }
  // Waits for the decision of round `n` (0-based) of container `id`.
  nlohmann::json Decision(const std::string& id, size_t n) {
    agent_->WaitForDecisions(
        id, [&](const auto&) { return MkdirX(id).size() > n; }, absl::Seconds(30));
    auto ds = MkdirX(id);
    return ds.size() > n ? ds[n] : nlohmann::json{{"missing", n}};
  }

  std::unique_ptr<TempDir> dir_;
  std::string policies_, hook_json_;
  std::unique_ptr<Agent> agent_;
};

// A looping container: `round(n)` makes it call mkdir /x once and returns
// what it saw.
struct Looper {
  std::unique_ptr<Container> c;
  std::unique_ptr<Subprocess> run;
  std::string Round(int n) {
    const std::string tmp = c->rootfs() + "/tmp/";
    std::ofstream(tmp + "go" + std::to_string(n)) << "go";
    const std::string r = tmp + "r" + std::to_string(n);
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!fs::exists(r) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
    return fs::exists(r) ? Slurp(r) : "(no answer)";
  }
  ExitInfo Stop() {
    std::ofstream(c->rootfs() + "/tmp/stop") << "stop";
    return run->Wait(absl::Seconds(30));
  }
};

Looper StartLooper(Runtime rt, const std::string& socket, const std::string& name,
                   std::map<std::string, std::string> annotations,
                   std::optional<std::string> metadata) {
  ContainerConfig cfg;
  cfg.args = {"sh", "-c", kLoop};
  cfg.annotations = std::move(annotations);
  cfg.seccomp = SeccompConfig{socket, std::move(metadata), {"mkdir", "mkdirat"}};
  Looper l;
  auto c = Container::Create(rt, UniqueContainerId(absl::StrCat("pdir-", name)), cfg);
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return l;
  l.c = *std::move(c);
  auto run = l.c->Start();
  EXPECT_TRUE(run.ok()) << run.status();
  if (run.ok()) l.run = *std::move(run);
  return l;
}

Runtime Other(Runtime r) { return r == Runtime::kRunc ? Runtime::kCrun : Runtime::kRunc; }

TEST_P(PolicyDirE2ETest, TenantsDecidedByTheirOwnPolicyReloadedWithoutRestart) {
  const std::string plugin_sock = dir_->path() + "/audit.sock";
  auto plugin =
      Subprocess::Start({Runfile("agent/plugin/examples/audit_py/audit_py"),
                         "--listen=unix://" + plugin_sock, "--deny_paths=/x", "--errno=ENOSPC"});
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  ASSERT_TRUE(WaitForSocket(plugin_sock, absl::Seconds(30)));
  WriteAtomically(policies_ + "/tenant-a.yaml", kTenantA);
  WriteAtomically(policies_ + "/tenant-b.yaml", kTenantB);
  StartAgent();
  // A binds by annotation, B by listenerMetadata (what the hook writes).
  Looper a = StartLooper(GetParam(), agent_->socket_path(), "a",
                         {{"seccomp-agent.io/policy", "tenant-a"}}, std::nullopt);
  Looper b = StartLooper(Other(GetParam()), agent_->socket_path(), "b", {},
                         "seccomp-agent.io/policy=tenant-b");
  ASSERT_TRUE(a.run && b.run);
  const std::string ida = a.c->id(), idb = b.c->id();

  EXPECT_THAT(a.Round(0), StartsWith("1 ")) << agent_->Stderr();
  EXPECT_THAT(a.Round(0), HasSubstr("Operation not permitted"));
  EXPECT_EQ(b.Round(0), "0 \n") << agent_->Stderr();
  EXPECT_FALSE(fs::exists(b.c->rootfs() + "/x"));  // spoofed: nothing was made
  nlohmann::json da = Decision(ida, 0), db = Decision(idb, 0);
  EXPECT_EQ(da.value("policy", ""), "tenant-a@1") << da.dump();
  EXPECT_EQ(da.value("result", ""), "EPERM") << da.dump();
  EXPECT_EQ(db.value("policy", ""), "tenant-b@1") << db.dump();
  EXPECT_EQ(db.value("result", ""), "0") << db.dump();

  // tenant-b denies with EACCES now: reloaded through the admin API.
  WriteAtomically(policies_ + "/tenant-b.yaml", kTenantBEacces);
  ProcessResult ctl = agent_->Ctl({"reload"});
  EXPECT_EQ(ctl.exit.exit_code, 0) << ctl.Describe();
  EXPECT_THAT(ctl.out, HasSubstr("policy tenant-b: v")) << ctl.Describe();
  EXPECT_THAT(b.Round(1), HasSubstr("Permission denied"));
  EXPECT_THAT(a.Round(1), HasSubstr("Operation not permitted"));  // A unchanged
  db = Decision(idb, 1);
  EXPECT_EQ(db.value("rule", ""), "b-eacces") << db.dump();
  EXPECT_NE(db.value("policy", ""), "tenant-b@1") << db.dump();
  EXPECT_EQ(Decision(ida, 1).value("policy", ""), "tenant-a@1");

  // A plugin added to tenant-a; the directory watch reloads it.
  WriteAtomically(policies_ + "/tenant-a.yaml",
                  absl::StrCat("version: 1\ndefault_action: {allow: {}}\nplugins:\n"
                               "  - {name: audit, address: \"unix://",
                               plugin_sock,
                               "\", timeout_ms: 5000}\nrules:\n"
                               "  - {name: ask-audit, match: {syscalls: [mkdir, mkdirat]}, "
                               "action: {plugin: audit}}\n"));
  ASSERT_TRUE(agent_->WaitForLog("policy tenant-a@2 reloaded", absl::Seconds(30)))
      << agent_->Stderr();
  EXPECT_THAT(a.Round(2), HasSubstr("No space left on device")) << agent_->Stderr();
  EXPECT_THAT(b.Round(2), HasSubstr("Permission denied"));
  da = Decision(ida, 2);
  EXPECT_EQ(da.value("policy", ""), "tenant-a@2") << da.dump();
  EXPECT_THAT(da.value("backend", ""), HasSubstr("plugin:audit")) << da.dump();
  EXPECT_EQ(da.value("result", ""), "ENOSPC") << da.dump();

  // Neither container was restarted: one registration each, both still run.
  EXPECT_EQ(agent_->CountLog(absl::StrCat("container ", ida, " registered")), 1);
  EXPECT_EQ(agent_->CountLog(absl::StrCat("container ", idb, " registered")), 1);
  EXPECT_EQ(a.Stop().exit_code, 0);
  EXPECT_EQ(b.Stop().exit_code, 0);
  (*plugin)->Signal(SIGTERM);
}

TEST_P(PolicyDirE2ETest, HookWrittenProfileAndAgentUseTheSameName) {
  WriteAtomically(policies_ + "/tenant-h.yaml", kTenantH);
  StartAgent();
  ContainerConfig cfg;
  cfg.args = {"sh", "-c",
              "mkdir /tmp/d; rmdir /tmp/d; echo rmdir_rc=$?; mkdir /x; echo mkdir_rc=$?"};
  cfg.annotations = {{"seccomp-agent.io/policy", "tenant-h"}};
  auto c = Container::Create(GetParam(), UniqueContainerId("pdir-hook"), cfg);
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string config = (*c)->bundle() + "/config.json";
  ProcessResult hook =
      RunProcess({"/bin/sh", "-c",
                  absl::StrCat(Runfile("oci-hook/seccomp-agent-hook"), " --config=", hook_json_,
                               " precreate < ", config, " > ", config, ".new && mv ", config,
                               ".new ", config)},
                 absl::Seconds(30));
  ASSERT_EQ(hook.exit.exit_code, 0) << hook.Describe();
  nlohmann::json seccomp = nlohmann::json::parse(Slurp(config))["linux"]["seccomp"];
  EXPECT_EQ(seccomp["listenerMetadata"], "seccomp-agent.io/policy=tenant-h") << seccomp.dump();
  EXPECT_THAT(seccomp.dump(), HasSubstr("SCMP_ACT_ERRNO")) << seccomp.dump();  // rmdir

  ProcessResult r = (*c)->Run(absl::Seconds(60));
  EXPECT_EQ(r.exit.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out + r.err, HasSubstr("Read-only file system")) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("rmdir_rc=1"));
  EXPECT_THAT(r.out + r.err, HasSubstr("Permission denied")) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("mkdir_rc=1"));
  nlohmann::json d = Decision((*c)->id(), 0);
  EXPECT_EQ(d.value("policy", ""), "tenant-h@1") << d.dump();
  EXPECT_EQ(d.value("rule", ""), "h-mkdir") << d.dump();
  for (const auto& any : agent_->DecisionsFor((*c)->id())) {
    EXPECT_NE(any.value("syscall", ""), "rmdir") << "the kernel decides rmdir: " << any.dump();
    EXPECT_EQ(any.value("policy", ""), "tenant-h@1") << any.dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Runtimes, PolicyDirE2ETest,
                         ::testing::Values(Runtime::kRunc, Runtime::kCrun),
                         [](const auto& info) { return std::string(RuntimeName(info.param)); });

}  // namespace
}  // namespace seccomp_agent::integration
