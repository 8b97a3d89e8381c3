// PolicySet: binding order, fail-closed names, and a reload of each section
// of a policy file (rules, plugins, injection settings, redirect_roots),
// each applied as a whole to the containers bound to the name.
#include "agent/policy_set.h"

#include <linux/audit.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/plugin/testing/fake_plugin.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kDeny[] = R"(version: 1
default_action: {allow: {}}
rules:
  - {name: a-deny, match: {syscalls: [mkdir]}, action: {deny: {errno: EPERM}}}
)";
constexpr char kSpoof[] = R"(version: 1
default_action: {allow: {}}
rules:
  - {name: b-spoof, match: {syscalls: [mkdir]}, action: {return: {value: 0}}}
)";
constexpr char kEacces[] = R"(version: 1
default_action: {allow: {}}
rules:
  - {name: b-eacces, match: {syscalls: [mkdir]}, action: {deny: {errno: EACCES}}}
)";
constexpr char kBroken[] = R"(version: 1
default_action: {allow: {}}
rules: [{name: x, match: {syscalls: [mkdri]}, action: {allow: {}}}]
)";
constexpr char kDefault[] = R"(version: 1
default_action: {allow: {}}
rules:
  - {name: d-rule, match: {syscalls: [mkdir]}, action: {deny: {errno: ENOSPC}}}
)";

class PolicySetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/policyset-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Write("tenant-a.yaml", kDeny);
    Write("tenant-b.yaml", kSpoof);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Write(const std::string& name, const std::string& text) {
    // Like an editor or kubectl: a new file renamed over the old one.
    std::ofstream(dir_ + "/." + name + ".tmp") << text;
    fs::rename(dir_ + "/." + name + ".tmp", dir_ + "/" + name);
  }

  std::unique_ptr<PolicySet> Open(std::vector<PolicySelector> selectors = {}) {
    PolicySetOptions o;
    o.dir = dir_;
    o.selectors = std::move(selectors);
    auto s = PolicySet::Open(std::move(o));
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  // The rule and action `slot`'s policy in force picks for mkdir.
  static std::string Decide(const PolicySlot& slot) {
    std::shared_ptr<const BoundPolicy> b = slot.Get();
    if (b->policy == nullptr) return "no policy: " + b->error;
    ContainerInfo info;
    SyscallEvent ev;
    ev.container = &info;
    ev.arch = AUDIT_ARCH_X86_64;
    ev.syscall = "mkdir";
    ev.path = "/x";
    CompiledPolicy::Verdict v = b->policy->Evaluate(ev);
    return absl::StrCat(b->Label(), " ", v.rule, " ", v.action->ShortDebugString());
  }

  std::string dir_;
};

ContainerInfo Info(const std::string& id, std::map<std::string, std::string> annotations = {},
                   const std::string& metadata = "") {
  ContainerInfo i;
  i.id = id;
  i.annotations = std::move(annotations);
  i.metadata = metadata;
  return i;
}

TEST_F(PolicySetTest, BindingOrderMetadataThenAnnotationThenSelectorsThenDefault) {
  PolicySelector by_team;
  by_team.annotations = {{"team", "blue*"}};
  by_team.policy = "tenant-b";
  PolicySelector by_id;
  by_id.id = "build-*";
  by_id.policy = "tenant-a";
  auto set = Open({by_team, by_id});
  ASSERT_NE(set, nullptr);
  using P = std::pair<std::string, std::string>;
  // listenerMetadata beats the annotation, which beats the selectors.
  EXPECT_EQ(set->NameFor(Info("c1", {{"seccomp-agent.io/policy", "tenant-b"}},
                              "seccomp-agent.io/policy=tenant-a")),
            (P{"tenant-a", "listenerMetadata"}));
  EXPECT_EQ(set->NameFor(Info("build-1", {{"seccomp-agent.io/policy", "tenant-b"}})),
            (P{"tenant-b", "annotation"}));
  EXPECT_EQ(set->NameFor(Info("c2", {{"team", "blue-eu"}})), (P{"tenant-b", "selectors"}));
  EXPECT_EQ(set->NameFor(Info("build-7")), (P{"tenant-a", "selectors"}));
  // Metadata that is not ours ("tenant-a" alone) is no binding.
  EXPECT_EQ(set->NameFor(Info("c3", {}, "tenant-a")), (P{"default", "default"}));
  EXPECT_THAT(Decide(*set->Bind(Info("c4", {}, "seccomp-agent.io/policy=tenant-a"))),
              HasSubstr("tenant-a@1 a-deny deny { errno_code: 1 }"));
  EXPECT_THAT(Decide(*set->Bind(Info("c5", {{"team", "blue"}}))),
              HasSubstr("tenant-b@1 b-spoof return"));
  EXPECT_THAT(Decide(*set->Bind(Info("c6"))), HasSubstr("default@1 default allow"));
}

TEST_F(PolicySetTest, DefaultIsPolicyFileElseDefaultYamlInTheDirElseBuiltIn) {
  Write("default.yaml", kDefault);
  auto set = Open();
  ASSERT_NE(set, nullptr);
  EXPECT_THAT(Decide(*set->Bind(Info("c"))), HasSubstr("default@1 d-rule"));
  EXPECT_EQ(set->Current("default")->source, dir_ + "/default.yaml");
  PolicySetOptions o;
  o.default_file = dir_ + "/tenant-b.yaml";
  o.dir = dir_;
  auto explicit_file = PolicySet::Open(std::move(o));
  ASSERT_TRUE(explicit_file.ok());
  EXPECT_THAT(Decide(*(*explicit_file)->Bind(Info("c"))), HasSubstr("default@1 b-spoof"));
}

TEST_F(PolicySetTest, UnknownBrokenOrInvalidNamesFailClosedNeverTheDefault) {
  Write("broken.yaml", kBroken);
  auto set = Open();
  ASSERT_NE(set, nullptr);
  std::shared_ptr<PolicySlot> unknown =
      set->Bind(Info("c1", {{"seccomp-agent.io/policy", "nope"}}));
  EXPECT_EQ(unknown->Get()->policy, nullptr);
  EXPECT_THAT(unknown->Get()->error, HasSubstr("no policy \"nope\" in " + dir_));
  std::shared_ptr<PolicySlot> broken = set->Bind(Info("c2", {}, "seccomp-agent.io/policy=broken"));
  EXPECT_EQ(broken->Get()->policy, nullptr);
  EXPECT_THAT(broken->Get()->error, HasSubstr("mkdri"));
  std::shared_ptr<PolicySlot> invalid =
      set->Bind(Info("c3", {{"seccomp-agent.io/policy", "../tenant-a"}}));
  EXPECT_EQ(invalid->Get()->policy, nullptr);
  EXPECT_THAT(invalid->Get()->error, HasSubstr("must match"));
  // Fixed by a reload: the containers bound to the name get it next time.
  Write("broken.yaml", kDeny);
  Write("nope.yaml", kSpoof);
  EXPECT_TRUE(set->Reload().ok());
  EXPECT_THAT(Decide(*broken), HasSubstr("broken@1 a-deny"));
  EXPECT_THAT(Decide(*unknown), HasSubstr("nope@1 b-spoof"));
}

TEST_F(PolicySetTest, ReloadRulesReachesBoundContainersAndLeavesOthers) {
  auto set = Open();
  ASSERT_NE(set, nullptr);
  std::shared_ptr<PolicySlot> a = set->Bind(Info("a", {{"seccomp-agent.io/policy", "tenant-a"}}));
  std::shared_ptr<PolicySlot> b = set->Bind(Info("b", {{"seccomp-agent.io/policy", "tenant-b"}}));
  std::shared_ptr<const BoundPolicy> in_flight = b->Get();
  Write("tenant-b.yaml", kEacces);
  ASSERT_TRUE(set->Reload(/*changed_only=*/true).ok());
  EXPECT_THAT(Decide(*b), HasSubstr("tenant-b@2 b-eacces deny { errno_code: 13 }"));
  EXPECT_THAT(Decide(*a), HasSubstr("tenant-a@1 a-deny"));  // unchanged file: same version
  EXPECT_EQ(in_flight->version, 1u);  // a decision in flight keeps what it started with
  // A broken file keeps the previous version, says why; the others reload.
  Write("tenant-b.yaml", kBroken);
  Write("tenant-a.yaml", kSpoof);
  absl::Status s = set->Reload(true);
  EXPECT_THAT(std::string(s.message()), HasSubstr("tenant-b: "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("mkdri"));
  EXPECT_THAT(Decide(*b), HasSubstr("tenant-b@2 b-eacces"));
  EXPECT_THAT(Decide(*a), HasSubstr("tenant-a@2 b-spoof"));
  for (const PolicyStatus& p : set->Status()) {
    if (p.name == "tenant-b") {
      EXPECT_THAT(p.error, HasSubstr("mkdri"));
    } else if (p.name == "tenant-a") {
      EXPECT_EQ(p.error, "");
    }
  }
}

TEST_F(PolicySetTest, ReloadInjectionSettingsBuildsANewInjectorOnlyWhenTheyChange) {
  Write("tenant-a.yaml", absl::StrCat(kDeny, "injection: {mode: emulate}\n"));
  auto set = Open();
  ASSERT_NE(set, nullptr);
  auto v1 = set->Current("tenant-a");
  EXPECT_EQ(v1->injector_options.mode, injector::Mode::kEmulate);
  Write("tenant-a.yaml", absl::StrCat(kEacces, "injection: {mode: emulate}\n"));
  ASSERT_TRUE(set->Reload().ok());
  auto v2 = set->Current("tenant-a");
  EXPECT_EQ(v2->injector, v1->injector);  // same settings: the replay guard survives
  Write("tenant-a.yaml",
        absl::StrCat(kEacces, "injection: {mode: kernel, strict: true, strict_errno: EACCES}\n"));
  ASSERT_TRUE(set->Reload().ok());
  auto v3 = set->Current("tenant-a");
  EXPECT_NE(v3->injector, v2->injector);
  EXPECT_EQ(v3->injector_options.mode, injector::Mode::kKernel);
  EXPECT_TRUE(v3->injector_options.strict);
  EXPECT_EQ(v3->injector_options.strict_errno, 13);
  EXPECT_EQ(v3->handler, v3->router.get());
}

// A plugin added by a reload decides (before: "is not configured").
TEST_F(PolicySetTest, ReloadPluginsBuildsANewDispatcherThatDecides) {
  plugin::testing::FakePlugin fake;
  const std::string addr = absl::StrCat("unix://", dir_, "/p.sock");
  ASSERT_TRUE(fake.Start(addr).ok());
  fake.set_responder([](const seccompagent::v1::Notification&) {
    seccompagent::v1::Decision d;
    d.mutable_deny()->set_errno_code(38);
    return d;
  });
  auto set = Open();
  ASSERT_NE(set, nullptr);
  EXPECT_EQ(set->Current("tenant-a")->plugins, nullptr);
  Write("tenant-a.yaml", absl::StrCat(R"(version: 1
default_action: {allow: {}}
plugins:
  - {name: judge, address: ")",
                                      addr, R"(", timeout_ms: 5000}
rules:
  - {name: ask, match: {syscalls: [mkdir]}, action: {plugin: judge}}
)"));
  ASSERT_TRUE(set->Reload().ok());
  auto b = set->Current("tenant-a");
  ASSERT_NE(b->plugins, nullptr);
  ContainerInfo info = Info("a");
  SyscallEvent ev;
  ev.container = &info;
  ev.arch = AUDIT_ARCH_X86_64;
  ev.syscall = "mkdir";
  std::mutex mu;
  std::condition_variable cv;
  std::optional<plugin::PluginResult> got;
  b->plugins->Decide("judge", ev, [&](plugin::PluginResult r) {
    std::lock_guard<std::mutex> lock(mu);
    got = std::move(r);
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return got.has_value(); }));
  EXPECT_EQ(got->kind, plugin::PluginResult::Kind::kAction) << got->error;
  EXPECT_EQ(got->action.deny().errno_code(), 38);
  EXPECT_EQ(fake.requests(), 1);
  auto stats = set->PluginStats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].first, "tenant-a");
  EXPECT_EQ(stats[0].second.name, "judge");
}

TEST_F(PolicySetTest, ReloadRedirectRootsRebuildsTheDispatcherWithThem) {
  const std::string plugins =
      absl::StrCat("plugins:\n  - {name: judge, address: \"unix://", dir_, "/none.sock\"}\n");
  Write("tenant-a.yaml", absl::StrCat(kDeny, "redirect_roots: [/srv]\n", plugins));
  auto set = Open();
  ASSERT_NE(set, nullptr);
  auto v1 = set->Current("tenant-a");
  EXPECT_EQ(v1->redirect_roots, std::vector<std::string>{"/srv"});
  Write("tenant-a.yaml", absl::StrCat(kEacces, "redirect_roots: [/srv]\n", plugins));
  ASSERT_TRUE(set->Reload().ok());
  EXPECT_EQ(set->Current("tenant-a")->plugins, v1->plugins);  // same plugins, same roots
  Write("tenant-a.yaml", absl::StrCat(kEacces, "redirect_roots: [/var/lib/x]\n", plugins));
  ASSERT_TRUE(set->Reload().ok());
  auto v3 = set->Current("tenant-a");
  EXPECT_EQ(v3->redirect_roots, std::vector<std::string>{"/var/lib/x"});
  EXPECT_NE(v3->plugins, v1->plugins);
}

TEST_F(PolicySetTest, DirectoryWatchReloadsAChangedFile) {
  auto set = Open();
  ASSERT_NE(set, nullptr);
  ASSERT_TRUE(set->Watch().ok());
  std::shared_ptr<PolicySlot> b = set->Bind(Info("b", {{"seccomp-agent.io/policy", "tenant-b"}}));
  Write("tenant-b.yaml", kEacces);
  Write("tenant-c.yaml", kDeny);  // a new policy too
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline &&
         (b->Get()->version < 2 || set->Current("tenant-c") == nullptr)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_THAT(Decide(*b), HasSubstr("tenant-b@2 b-eacces"));
  ASSERT_NE(set->Current("tenant-c"), nullptr);
  EXPECT_EQ(set->Current("tenant-a")->version, 1u);  // unchanged: not reloaded
}

// A Kubernetes ConfigMap volume: the directory is a symlink that the
// kubelet points at a new directory on update, removing the old one.
TEST_F(PolicySetTest, DirectoryWatchFollowsASwappedSymlinkedDirectory) {
  const std::string v1 = dir_ + "/..v1", v2 = dir_ + "/..v2", link = dir_ + "/policies";
  fs::create_directory(v1);
  fs::copy_file(dir_ + "/tenant-b.yaml", v1 + "/tenant-b.yaml");
  fs::create_directory_symlink(v1, link);
  PolicySetOptions o;
  o.dir = link;
  auto set = PolicySet::Open(std::move(o));
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_TRUE((*set)->Watch().ok());
  fs::create_directory(v2);
  std::ofstream(v2 + "/tenant-b.yaml") << kEacces;
  fs::create_directory_symlink(v2, dir_ + "/policies.new");
  fs::rename(dir_ + "/policies.new", link);
  fs::remove_all(v1);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && (*set)->Current("tenant-b")->version < 2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ((*set)->Current("tenant-b")->version, 2u);
  // Watched again: the next change is seen too.
  std::ofstream(v2 + "/tenant-b.yaml.tmp") << kSpoof;
  fs::rename(v2 + "/tenant-b.yaml.tmp", v2 + "/tenant-b.yaml");
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && (*set)->Current("tenant-b")->version < 3) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ((*set)->Current("tenant-b")->version, 3u);
}

}  // namespace
}  // namespace seccomp_agent
