// Matching semantics of CompiledPolicy.
#include "agent/policy/policy.h"

#include <errno.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "agent/model/syscall_args.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Counts heap allocations while g_counting is set, to prove that
// Evaluate() and Needs() never allocate.
namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocs{0};
}  // namespace

void* operator new(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1);
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace seccomp_agent {
namespace {

std::shared_ptr<const CompiledPolicy> Load(const std::string& yaml) {
  auto p = CompiledPolicy::LoadString(yaml, "test.yaml");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : nullptr;
}

class PolicyTest : public ::testing::Test {
 protected:
  SyscallEvent Event(const std::string& syscall, const std::string& path = "") {
    SyscallEvent ev;
    ev.container = &container_;
    ev.syscall = syscall;
    if (!path.empty()) ev.path = path;
    return ev;
  }
  ContainerInfo container_ = [] {
    ContainerInfo c;
    c.id = "ctr-1234";
    return c;
  }();
};

constexpr char kExample[] = R"(version: 1
default_action: {allow: {}}
rules:
  - name: no-mkdir-in-forbidden
    match:
      containers: {annotations: {"example.com/tenant": "a"}}
      syscalls: [mkdir, mkdirat]
      args: {path: "/forbidden/**"}
    action: {deny: {errno: EPERM}}
  - name: fake-success
    match: {syscalls: [mkdir, mkdirat], args: {path: "/fake*"}}
    action: {return: {value: 0}}
  - name: audit-opens
    match: {syscalls: [openat], args: {path: "/etc/**"}}
    action: {log: {}}
)";

TEST_F(PolicyTest, ExamplePolicyDecisions) {
  auto p = Load(kExample);
  ASSERT_NE(p, nullptr);
  container_.annotations["example.com/tenant"] = "a";

  auto v = p->Evaluate(Event("mkdirat", "/forbidden/x"));
  EXPECT_EQ(v.rule, "no-mkdir-in-forbidden");
  EXPECT_EQ(v.rule_index, 0);
  ASSERT_TRUE(v.action->has_deny());
  EXPECT_EQ(v.action->deny().errno_code(), EPERM);

  v = p->Evaluate(Event("mkdir", "/fakedir"));
  EXPECT_EQ(v.rule, "fake-success");
  EXPECT_EQ(ActionKindName(*v.action), "return");

  v = p->Evaluate(Event("openat", "/etc/passwd"));
  EXPECT_EQ(v.rule, "audit-opens");
  EXPECT_EQ(ActionKindName(*v.action), "log");

  v = p->Evaluate(Event("openat", "/tmp/x"));
  EXPECT_EQ(v.rule, "default");
  EXPECT_EQ(v.rule_index, -1);
  EXPECT_TRUE(v.action->has_allow());
  EXPECT_EQ(v.action, &p->proto().default_action());
}

TEST_F(PolicyTest, ContainerAnnotationMustBePresentAndMatch) {
  auto p = Load(kExample);
  ASSERT_NE(p, nullptr);
  // No annotation: the tenant rule does not apply.
  EXPECT_EQ(p->Evaluate(Event("mkdir", "/forbidden/x")).rule, "default");
  container_.annotations["example.com/tenant"] = "b";
  EXPECT_EQ(p->Evaluate(Event("mkdir", "/forbidden/x")).rule, "default");
  container_.annotations["example.com/tenant"] = "a";
  EXPECT_EQ(p->Evaluate(Event("mkdir", "/forbidden/x")).rule, "no-mkdir-in-forbidden");
  // A null container never matches a container condition.
  SyscallEvent ev = Event("mkdir", "/forbidden/x");
  ev.container = nullptr;
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
}

TEST_F(PolicyTest, ContainerIdAndMetadataGlobs) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: by-id-and-meta
    match: {containers: {id: "ctr-*", metadata: "team=*", annotations: {"a": "x*", "b": "*"}}}
    action: {deny: {errno: EACCES}}
)");
  ASSERT_NE(p, nullptr);
  container_.metadata = "team=red";
  container_.annotations = {{"a", "xyz"}, {"b", ""}};
  EXPECT_EQ(p->Evaluate(Event("getpid")).rule, "by-id-and-meta");
  container_.annotations.erase("b");  // "*" still requires presence
  EXPECT_EQ(p->Evaluate(Event("getpid")).rule, "default");
  container_.annotations["b"] = "1";
  container_.metadata = "";
  EXPECT_EQ(p->Evaluate(Event("getpid")).rule, "default");
  container_.metadata = "team=blue";
  container_.id = "other";
  EXPECT_EQ(p->Evaluate(Event("getpid")).rule, "default");
}

TEST_F(PolicyTest, FirstMatchWinsAcrossNamedAndAnySyscallRules) {
  auto p = Load(R"(version: 1
default_action: {deny: {errno: EPERM}}
rules:
  - name: log-tmp-any
    match: {args: {path: "/tmp/**"}}
    action: {log: {}}
  - name: allow-mkdir
    match: {syscalls: [mkdir]}
    action: {allow: {}}
  - name: deny-everything-else-named
    match: {syscalls: [mkdir, unlink]}
    action: {deny: {errno: EACCES}}
  - name: any-catchall
    action: {return: {value: 7}}
)");
  ASSERT_NE(p, nullptr);
  // The any-syscall rule comes first in file order, so it wins for /tmp.
  EXPECT_EQ(p->Evaluate(Event("mkdir", "/tmp/a")).rule, "log-tmp-any");
  EXPECT_EQ(p->Evaluate(Event("mkdir", "/home/a")).rule, "allow-mkdir");
  EXPECT_EQ(p->Evaluate(Event("unlink", "/home/a")).rule, "deny-everything-else-named");
  auto v = p->Evaluate(Event("getpid"));
  EXPECT_EQ(v.rule, "any-catchall");
  EXPECT_EQ(v.rule_index, 3);
  EXPECT_EQ(v.action->return_().value(), 7);
  EXPECT_EQ(p->Evaluate(Event("unlink", "/tmp/z")).rule, "log-tmp-any");
}

TEST_F(PolicyTest, PathConditionNeedsADecodedPath) {
  auto p = Load(kExample);
  ASSERT_NE(p, nullptr);
  SyscallEvent ev = Event("mkdir");  // not decoded
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
  ev.decode_error = "process_vm_readv: ESRCH";
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
}

TEST_F(PolicyTest, RelativePathsAreMatchedLiterally) {
  auto p = Load(kExample);
  ASSERT_NE(p, nullptr);
  // "fake" relative to the cwd is not "/fake*" (documented; no cwd resolution yet).
  EXPECT_EQ(p->Evaluate(Event("mkdirat", "fake")).rule, "default");
  EXPECT_EQ(p->Evaluate(Event("mkdirat", "/fake")).rule, "fake-success");
}

TEST_F(PolicyTest, RenameFamilyMatchesEitherPath) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: protect-etc
    match: {syscalls: [rename, renameat, renameat2, link], args: {path: "/etc/**"}}
    action: {deny: {errno: EPERM}}
)");
  ASSERT_NE(p, nullptr);
  SyscallEvent ev = Event("renameat2", "/tmp/evil");
  ev.path2 = "/etc/passwd";
  EXPECT_EQ(p->Evaluate(ev).rule, "protect-etc");
  ev.path = "/etc/shadow";
  ev.path2 = "/tmp/copy";
  EXPECT_EQ(p->Evaluate(ev).rule, "protect-etc");
  ev.path = "/tmp/a";
  ev.path2 = "/tmp/b";
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
}

TEST_F(PolicyTest, SockaddrConditions) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: no-low-ports
    match: {syscalls: [bind], args: {sockaddr: {family: AF_INET, address: "0.0.0.0", port: 80}}}
    action: {deny: {errno: EACCES}}
  - name: no-docker-sock
    match: {syscalls: [connect], args: {sockaddr: {family: unix, address: "/run/*.sock"}}}
    action: {deny: {errno: EPERM}}
)");
  ASSERT_NE(p, nullptr);
  SyscallEvent ev = Event("bind");
  EXPECT_EQ(p->Evaluate(ev).rule, "default");  // not decoded
  ev.sockaddr = Sockaddr{AF_INET, "0.0.0.0", 80, {}};
  EXPECT_EQ(p->Evaluate(ev).rule, "no-low-ports");
  ev.sockaddr->port = 81;
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
  ev.sockaddr = Sockaddr{AF_INET6, "0.0.0.0", 80, {}};
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
  SyscallEvent c = Event("connect");
  c.sockaddr = Sockaddr{AF_UNIX, "/run/docker.sock", std::nullopt, {}};
  EXPECT_EQ(p->Evaluate(c).rule, "no-docker-sock");
  c.sockaddr->address = "@abstract";
  EXPECT_EQ(p->Evaluate(c).rule, "default");
}

TEST_F(PolicyTest, FdConditionUsesDecodedFdOrTheRawArgument) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: stdout-only
    match: {syscalls: [write], args: {fd: 1}}
    action: {log: {}}
)");
  ASSERT_NE(p, nullptr);
  SyscallEvent ev = Event("write");
  ev.fd = 1;
  EXPECT_EQ(p->Evaluate(ev).rule, "stdout-only");
  ev.fd = 2;
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
  ev.fd.reset();
  ev.args[0] = 0xffffffff00000001ull;  // upper bits ignored: fds are ints
  EXPECT_EQ(p->Evaluate(ev).rule, "stdout-only");
}

TEST_F(PolicyTest, RuntimePhaseAllowsWhatNoRuleNames) {
  auto p = Load(R"(version: 1
default_action: {deny: {errno: EPERM}}
rules:
  - name: no-mkdir
    match: {syscalls: [mkdir]}
    action: {deny: {errno: EACCES}}
)");
  ASSERT_NE(p, nullptr);
  SyscallEvent ev = Event("openat", "/proc/self/attr/exec");
  ev.runtime_phase = true;
  auto v = p->Evaluate(ev);
  EXPECT_EQ(v.rule, "runtime-init");
  EXPECT_EQ(v.rule_index, -2);
  ASSERT_NE(v.action, nullptr);
  EXPECT_TRUE(v.action->has_allow());
  // A rule that names the call still applies in the runtime phase.
  ev.syscall = "mkdir";
  v = p->Evaluate(ev);
  EXPECT_EQ(v.rule, "no-mkdir");
  EXPECT_EQ(v.action->deny().errno_code(), EACCES);
  // Outside the runtime phase the default applies.
  ev.syscall = "openat";
  ev.runtime_phase = false;
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
}

TEST_F(PolicyTest, NeedsFollowsRulesAndTheLayoutTable) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: a
    match: {syscalls: [mkdir, getpid]}
    action: {deny: {errno: EPERM}}
  - name: b
    match: {syscalls: [mkdirat], args: {path: "/x/**"}}
    action: {deny: {errno: EPERM}}
  - name: c
    match: {syscalls: [bind], args: {sockaddr: {port: 22}}}
    action: {deny: {errno: EPERM}}
  - name: d
    match: {syscalls: [write]}
    action: {replace_write: {redact_regex: "k[0-9]"}}
)");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->Needs("mkdir"), kNeedNothing);  // no condition on the path
  EXPECT_EQ(p->Needs("mkdirat"), kNeedPath);
  EXPECT_EQ(p->Needs("bind"), kNeedSockaddr);
  EXPECT_EQ(p->Needs("write"), kNeedWriteBytes);
  EXPECT_EQ(p->Needs("getpid"), kNeedNothing);
  EXPECT_EQ(p->Needs("openat"), kNeedNothing);
  EXPECT_EQ(p->Needs("nonexistent"), kNeedNothing);
}

TEST_F(PolicyTest, NeedsOfAnySyscallRulesCoverEveryLayout) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: any-etc
    match: {args: {path: "/etc/**"}}
    action: {deny: {errno: EPERM}}
  - name: log-all
    action: {log: {}}
)");
  ASSERT_NE(p, nullptr);
  for (const SyscallArgLayout& l : AllArgLayouts()) {
    SCOPED_TRACE(l.syscall);
    // log-all wants everything decodable; each syscall offers what it has.
    EXPECT_EQ(p->Needs(l.syscall), l.Provides() & (kNeedPath | kNeedSockaddr));
  }
  EXPECT_EQ(p->Needs("getpid"), kNeedNothing);
  EXPECT_EQ(p->Evaluate(Event("getpid")).rule, "log-all");
  EXPECT_EQ(p->Evaluate(Event("unlinkat", "/etc/x")).rule, "any-etc");
}

TEST_F(PolicyTest, RedirectInsideRootIsAccepted) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
redirect_roots: [/var/lib/seccomp-agent]
rules:
  - name: hosts
    match: {syscalls: [openat]}
    action: {redirect_open: {exact: {"/etc/hosts": "/var/lib/seccomp-agent/hosts"}, prefix: {"/data": "/var/lib/seccomp-agent"}}}
)");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->Needs("openat"), kNeedPath);
  auto v = p->Evaluate(Event("openat", "/etc/hosts"));
  EXPECT_EQ(v.rule, "hosts");
  EXPECT_EQ(ActionKindName(*v.action), "redirect_open");
}

TEST_F(PolicyTest, EvaluateAndNeedsDoNotAllocate) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: tenant
    match: {containers: {annotations: {"t": "a*"}, id: "ctr-*"}, syscalls: [mkdir], args: {path: "/x/**/y"}}
    action: {deny: {errno: EPERM}}
  - name: rename-etc
    match: {syscalls: [renameat2], args: {path: "/etc/**"}}
    action: {deny: {errno: EPERM}}
  - name: sock
    match: {syscalls: [connect], args: {sockaddr: {family: inet6, address: "::*", port: 53}}}
    action: {log: {}}
  - name: stdout
    match: {syscalls: [write], args: {fd: 1}}
    action: {log: {}}
  - name: any-tmp
    match: {args: {path: "/tmp/*"}}
    action: {return: {value: 0}}
)");
  ASSERT_NE(p, nullptr);
  container_.annotations["t"] = "abc";
  std::vector<SyscallEvent> evs;
  evs.push_back(Event("mkdir", "/x/1/2/y"));
  evs.push_back(Event("mkdir", "/x/1/2/z"));
  evs.push_back(Event("renameat2", "/a"));
  evs.back().path2 = "/etc/b";
  evs.push_back(Event("connect"));
  evs.back().sockaddr = Sockaddr{AF_INET6, "::1", 53, {}};
  evs.push_back(Event("write"));
  evs.back().args[0] = 1;
  evs.push_back(Event("unlink", "/tmp/f"));
  evs.push_back(Event("getpid"));
  evs.back().runtime_phase = true;
  const char* names[] = {"mkdir", "renameat2", "connect", "write", "getpid", "nonexistent"};
  // Warm up (function-local statics).
  for (const auto& ev : evs) p->Evaluate(ev);

  // The counter works (also across the shared libraries of the test).
  g_allocs = 0;
  g_counting = true;
  auto probe = CompiledPolicy::LoadString("version: 1\ndefault_action: {allow: {}}\n", "probe");
  g_counting = false;
  ASSERT_TRUE(probe.ok());
  ASSERT_GT(g_allocs.load(), 0);

  g_allocs = 0;
  g_counting = true;
  int matched = 0;
  uint32_t needs = 0;
  for (int round = 0; round < 100; ++round) {
    for (const auto& ev : evs) matched += p->Evaluate(ev).rule_index >= 0;
    for (const char* n : names) needs |= p->Needs(n);
  }
  g_counting = false;
  EXPECT_EQ(g_allocs.load(), 0);
  EXPECT_EQ(matched, 100 * 5);
  EXPECT_EQ(needs, kNeedPath | kNeedSockaddr);
}

TEST(PolicyBuiltinTest, BuiltinDefaultLoadsAndDecides) {
  auto p = CompiledPolicy::BuiltinDefault();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->source(), "<builtin>");
  EXPECT_GE(p->proto().rules_size(), 3);
  ContainerInfo c;
  SyscallEvent ev;
  ev.container = &c;
  ev.syscall = "mkdirat";
  ev.path = "/sys/fs/cgroup/evil";
  auto v = p->Evaluate(ev);
  EXPECT_EQ(v.rule, "deny-mkdir-sysfs");
  EXPECT_EQ(v.action->deny().errno_code(), EPERM);
  ev.path = "/home/user/dir";
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
  EXPECT_TRUE(p->Evaluate(ev).action->has_allow());
  ev.syscall = "openat";
  ev.path = "/etc/resolv.conf";
  EXPECT_EQ(ActionKindName(*p->Evaluate(ev).action), "log");
  EXPECT_EQ(p->Needs("openat"), kNeedPath | kNeedNothing);
  // Compiled-in text and loaded proto agree.
  auto again = CompiledPolicy::LoadString(kBuiltinPolicyYaml, "x");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->proto().DebugString(), p->proto().DebugString());
}

TEST(ActionKindNameTest, AllKinds) {
  v1::Action a;
  EXPECT_EQ(ActionKindName(a), "none");
  a.mutable_allow();
  EXPECT_EQ(ActionKindName(a), "allow");
  a.mutable_deny();
  EXPECT_EQ(ActionKindName(a), "deny");
  a.mutable_return_();
  EXPECT_EQ(ActionKindName(a), "return");
  a.mutable_log();
  EXPECT_EQ(ActionKindName(a), "log");
  a.mutable_redirect_open();
  EXPECT_EQ(ActionKindName(a), "redirect_open");
  a.mutable_rewrite_bind();
  EXPECT_EQ(ActionKindName(a), "rewrite_bind");
  a.mutable_replace_write();
  EXPECT_EQ(ActionKindName(a), "replace_write");
  a.mutable_plugin();
  EXPECT_EQ(ActionKindName(a), "plugin");
}

TEST_F(PolicyTest, ScalarConditionsCompareTheRawRegisterUnsigned) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: no-packet
    match: {syscalls: [socket], args: {scalars: [{index: 0, op: eq, value: 17}]}}
    action: {deny: {errno: EAFNOSUPPORT}}
  - name: no-userns
    match: {syscalls: [unshare], args: {scalars: [{index: 0, op: masked_eq, mask: 0x10000000, value: 0x10000000}]}}
    action: {deny: {errno: EPERM}}
  - name: big
    match: {syscalls: [close], args: {scalars: [{index: 0, op: ge, value: 18446744073709551615}]}}
    action: {deny: {errno: EBADF}}
  - name: range
    match:
      syscalls: [getpriority]
      args: {scalars: [{index: 0, op: gt, value: 1}, {index: 0, op: le, value: 5}, {index: 1, op: ne, value: 0}]}
    action: {deny: {errno: EINVAL}}
  - name: lt
    match: {syscalls: [getpriority], args: {scalars: [{index: 1, op: lt, value: 3}]}}
    action: {log: {}}
)");
  ASSERT_NE(p, nullptr);
  SyscallEvent ev = Event("socket");
  ev.args[0] = 17;
  EXPECT_EQ(p->Evaluate(ev).rule, "no-packet");
  ev.args[0] = 0x100000011ull;  // upper bits count, as in the kernel filter
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
  ev = Event("unshare");
  ev.args[0] = 0x10000000 | 0x20000;
  EXPECT_EQ(p->Evaluate(ev).rule, "no-userns");
  ev.args[0] = 0x20000;
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
  ev = Event("close");
  ev.args[0] = ~0ull;
  EXPECT_EQ(p->Evaluate(ev).rule, "big");
  ev.args[0] = ~0ull - 1;
  EXPECT_EQ(p->Evaluate(ev).rule, "default");
  ev = Event("getpriority");
  ev.args[0] = 1;
  ev.args[1] = 7;
  EXPECT_EQ(p->Evaluate(ev).rule, "default");  // gt 1 fails
  ev.args[0] = 2;
  EXPECT_EQ(p->Evaluate(ev).rule, "range");
  ev.args[0] = 5;
  EXPECT_EQ(p->Evaluate(ev).rule, "range");
  ev.args[0] = 6;
  EXPECT_EQ(p->Evaluate(ev).rule, "default");  // le 5 fails
  ev.args[0] = 3;
  ev.args[1] = 0;  // ne 0 fails; lt 3 holds
  EXPECT_EQ(p->Evaluate(ev).rule, "lt");
  ev.args[0] = ~0ull;  // -1 as unsigned: gt 1 holds, le 5 fails
  ev.args[1] = 2;
  EXPECT_EQ(p->Evaluate(ev).rule, "lt");
}

TEST(ScalarHoldsTest, EveryOp) {
  using SC = v1::ScalarCondition;
  EXPECT_TRUE(ScalarHolds(SC::EQ, 5, 5, 0));
  EXPECT_FALSE(ScalarHolds(SC::EQ, 6, 5, 0));
  EXPECT_TRUE(ScalarHolds(SC::NE, 6, 5, 0));
  EXPECT_FALSE(ScalarHolds(SC::NE, 5, 5, 0));
  EXPECT_TRUE(ScalarHolds(SC::LT, 4, 5, 0));
  EXPECT_FALSE(ScalarHolds(SC::LT, 5, 5, 0));
  EXPECT_TRUE(ScalarHolds(SC::LE, 5, 5, 0));
  EXPECT_FALSE(ScalarHolds(SC::LE, 6, 5, 0));
  EXPECT_TRUE(ScalarHolds(SC::GT, 6, 5, 0));
  EXPECT_FALSE(ScalarHolds(SC::GT, 5, 5, 0));
  EXPECT_TRUE(ScalarHolds(SC::GE, 5, 5, 0));
  EXPECT_FALSE(ScalarHolds(SC::GE, 4, 5, 0));
  EXPECT_TRUE(ScalarHolds(SC::MASKED_EQ, 0xff12, 0x12, 0xff));
  EXPECT_FALSE(ScalarHolds(SC::MASKED_EQ, 0xff13, 0x12, 0xff));
  EXPECT_TRUE(ScalarHolds(SC::GT, ~0ull, 1, 0));  // unsigned: -1 is the largest
}

}  // namespace
}  // namespace seccomp_agent
