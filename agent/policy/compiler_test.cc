// The policy compiler: which rules move into the kernel filter, how the rest
// is written, and (against the real kernel) that a compiled filter plus an
// agent answering the rest decides every call as CompiledPolicy::Evaluate.
#include "agent/policy/compiler.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::shared_ptr<const CompiledPolicy> Load(const std::string& yaml) {
  auto p = CompiledPolicy::LoadString(yaml, "test.yaml");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : nullptr;
}

std::string Dump(const SyscallPlan& plan) {
  std::string s;
  for (const KernelRule& r : plan.rules) s += r.ToJson().dump() + "\n";
  return s;
}

const RuleDisposition* DispFor(const CompileResult& r, const std::string& rule,
                               const std::string& s) {
  for (const RuleDisposition& d : r.dispositions) {
    if (d.rule == rule && d.syscall == s) return &d;
  }
  return nullptr;
}

TEST(CompilerTest, UnconditionalDenyNeedsNoNotification) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: no-mkdir
    match: {syscalls: [mkdir, mkdirat]}
    action: {deny: {errno: EACCES}}
)");
  ASSERT_NE(p, nullptr);
  CompileResult r = Compile(*p);
  EXPECT_THAT(r.notify_syscalls, IsEmpty());
  ASSERT_EQ(r.syscalls.size(), 2u);
  EXPECT_EQ(Dump(r.syscalls[0]), R"({"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13})"
                                 "\n");
  EXPECT_EQ(Dump(r.syscalls[1]), R"({"names":["mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13})"
                                 "\n");
  EXPECT_TRUE(r.CompiledInKernel(0, "mkdir"));
  EXPECT_TRUE(r.CompiledInKernel(0, "mkdirat"));
}

TEST(CompilerTest, ScalarDenyUnderAllowAndUnderErrnoDefault) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: no-packet
    match: {syscalls: [socket], args: {scalars: [{index: 0, op: eq, value: 17}]}}
    action: {deny: {errno: EAFNOSUPPORT}}
)");
  ASSERT_NE(p, nullptr);
  CompileResult r = Compile(*p);
  EXPECT_THAT(r.notify_syscalls, IsEmpty());
  EXPECT_EQ(
      Dump(r.syscalls.at(0)),
      R"({"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,"args":[{"index":0,"value":17,"valueTwo":0,"op":"SCMP_CMP_EQ"}]})"
      "\n");
  // A base profile that refuses by default: the rest is allowed explicitly
  // with the complement of the compiled rule.
  CompileOptions o;
  o.profile_default = SeccompAction::Errno(EPERM);
  r = Compile(*p, o);
  EXPECT_THAT(r.notify_syscalls, IsEmpty());
  EXPECT_EQ(
      Dump(r.syscalls.at(0)),
      R"({"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,"args":[{"index":0,"value":17,"valueTwo":0,"op":"SCMP_CMP_EQ"}]})"
      "\n"
      R"({"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":17,"valueTwo":0,"op":"SCMP_CMP_NE"}]})"
      "\n");
}

TEST(CompilerTest, OneBitMaskedEqAndALaterAgentRule) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: no-userns
    match: {syscalls: [unshare], args: {scalars: [{index: 0, op: masked_eq, mask: 0x10000000, value: 0x10000000}]}}
    action: {deny: {errno: EPERM}}
  - name: log-unshare
    match: {syscalls: [unshare]}
    action: {log: {}}
)");
  ASSERT_NE(p, nullptr);
  CompileResult r = Compile(*p);
  EXPECT_THAT(r.notify_syscalls, ElementsAre("unshare"));
  EXPECT_EQ(
      Dump(r.syscalls.at(0)),
      R"({"names":["unshare"],"action":"SCMP_ACT_ERRNO","errnoRet":1,"args":[{"index":0,"value":268435456,"valueTwo":268435456,"op":"SCMP_CMP_MASKED_EQ"}]})"
      "\n"
      R"({"names":["unshare"],"action":"SCMP_ACT_NOTIFY","args":[{"index":0,"value":268435456,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]})"
      "\n");
  EXPECT_TRUE(r.CompiledInKernel(0, "unshare"));
  EXPECT_FALSE(r.CompiledInKernel(1, "unshare"));
  EXPECT_THAT(DispFor(r, "log-unshare", "unshare")->reason,
              HasSubstr("action log needs the agent"));
}

TEST(CompilerTest, EarlierAgentRuleThatMayMatchKeepsALaterRuleWithTheAgent) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: forbidden
    match: {syscalls: [mkdir], args: {path: "/forbidden/**"}}
    action: {deny: {errno: EPERM}}
  - name: no-mkdir
    match: {syscalls: [mkdir]}
    action: {deny: {errno: EACCES}}
)");
  ASSERT_NE(p, nullptr);
  CompileResult r = Compile(*p);
  EXPECT_THAT(r.notify_syscalls, ElementsAre("mkdir"));
  EXPECT_EQ(Dump(r.syscalls.at(0)), R"({"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"})"
                                    "\n");
  EXPECT_FALSE(r.CompiledInKernel(1, "mkdir"));
  EXPECT_THAT(DispFor(r, "no-mkdir", "mkdir")->reason,
              HasSubstr("earlier rule rules[0] \"forbidden\" may match the same calls first"));
  EXPECT_THAT(DispFor(r, "forbidden", "mkdir")->reason, HasSubstr("path condition"));
}

TEST(CompilerTest, DisjointEarlierAgentRuleDoesNotBlock) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: log-unix
    match: {syscalls: [socket], args: {scalars: [{index: 0, op: eq, value: 1}]}}
    action: {log: {}}
  - name: no-packet
    match: {syscalls: [socket], args: {scalars: [{index: 0, op: eq, value: 17}]}}
    action: {deny: {errno: EAFNOSUPPORT}}
)");
  ASSERT_NE(p, nullptr);
  CompileResult r = Compile(*p);
  EXPECT_TRUE(r.CompiledInKernel(1, "socket"));
  EXPECT_EQ(
      Dump(r.syscalls.at(0)),
      R"({"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,"args":[{"index":0,"value":17,"valueTwo":0,"op":"SCMP_CMP_EQ"}]})"
      "\n"
      R"({"names":["socket"],"action":"SCMP_ACT_NOTIFY","args":[{"index":0,"value":17,"valueTwo":0,"op":"SCMP_CMP_NE"}]})"
      "\n");
}

TEST(CompilerTest, DisjointnessProofs) {
  // Each pair: a compiled deny first, then a deny with another errno; the
  // second compiles exactly when the pair is provably disjoint.
  struct Case {
    const char* first;
    const char* second;
    bool disjoint;
  };
  const Case cases[] = {
      {"{index: 0, op: lt, value: 5}", "{index: 0, op: ge, value: 5}", true},
      {"{index: 0, op: lt, value: 5}", "{index: 0, op: ge, value: 4}", false},
      {"{index: 0, op: le, value: 5}", "{index: 0, op: gt, value: 5}", true},
      {"{index: 0, op: ne, value: 5}", "{index: 0, op: eq, value: 5}", true},
      {"{index: 0, op: ne, value: 5}", "{index: 0, op: eq, value: 6}", false},
      {"{index: 0, op: ne, value: 5}", "{index: 0, op: ne, value: 6}", false},
      {"{index: 0, op: eq, value: 5}", "{index: 1, op: eq, value: 6}", false},
      {"{index: 0, op: masked_eq, mask: 0xf0, value: 0x10}",
       "{index: 0, op: masked_eq, mask: 0x30, value: 0x20}", true},
      {"{index: 0, op: masked_eq, mask: 0xf0, value: 0x10}",
       "{index: 0, op: masked_eq, mask: 0x0f, value: 0x01}", false},
      {"{index: 0, op: masked_eq, mask: 0xf0, value: 0x10}", "{index: 0, op: eq, value: 0x21}",
       true},
      {"{index: 0, op: masked_eq, mask: 0xf0, value: 0x10}", "{index: 0, op: eq, value: 0x11}",
       false},
      {"{index: 0, op: masked_eq, mask: 0xf0, value: 0x10}", "{index: 0, op: lt, value: 0x10}",
       false},  // not proven
      {"{index: 0, op: ge, value: 18446744073709551615}",
       "{index: 0, op: lt, value: 18446744073709551615}", true},
  };
  for (const Case& c : cases) {
    auto p = Load(std::string(R"(version: 1
default_action: {allow: {}}
rules:
  - name: first
    match: {syscalls: [getpriority], args: {scalars: [)") +
                  c.first + R"(]}}
    action: {deny: {errno: EACCES}}
  - name: deny
    match: {syscalls: [getpriority], args: {scalars: [)" +
                  c.second + R"(]}}
    action: {deny: {}}
)");
    ASSERT_NE(p, nullptr);
    CompileResult r = Compile(*p);
    if (c.disjoint) {
      EXPECT_TRUE(r.CompiledInKernel(0, "getpriority")) << c.first;
    }
    EXPECT_EQ(r.CompiledInKernel(1, "getpriority"), c.disjoint) << c.first << " vs " << c.second;
  }
}

TEST(CompilerTest, SameActionOverlapCompilesDifferentActionDoesNot) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: a
    match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: eq, value: 1}]}}
    action: {deny: {errno: EPERM}}
  - name: b
    match: {syscalls: [getpriority], args: {scalars: [{index: 1, op: eq, value: 2}]}}
    action: {deny: {errno: EPERM}}
  - name: c
    match: {syscalls: [getpriority], args: {scalars: [{index: 1, op: eq, value: 3}]}}
    action: {deny: {errno: EACCES}}
)");
  ASSERT_NE(p, nullptr);
  CompileResult r = Compile(*p);
  // b overlaps a with the same action: accepted (it only falls back below
  // because of the rest, not because of a).
  EXPECT_THAT(DispFor(r, "b", "getpriority")->reason, HasSubstr("rest not expressible"));
  // c overlaps a (index 0 vs index 1) with another errno: kept; then the
  // rest (calls matching none of a, b) cannot be written next to two
  // compiled rules, so all three fall back to the agent.
  EXPECT_FALSE(r.CompiledInKernel(2, "getpriority"));
  EXPECT_THAT(DispFor(r, "c", "getpriority")->reason, HasSubstr("rules[0] \"a\" may match"));
  EXPECT_FALSE(r.CompiledInKernel(0, "getpriority"));
  EXPECT_THAT(DispFor(r, "a", "getpriority")->reason, HasSubstr("rest not expressible"));
  EXPECT_EQ(Dump(r.syscalls.at(0)), R"({"names":["getpriority"],"action":"SCMP_ACT_NOTIFY"})"
                                    "\n");
}

TEST(CompilerTest, SeveralCompiledRulesWithAnAllowRestAreAllWritten) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: a
    match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: le, value: 2}]}}
    action: {deny: {errno: EPERM}}
  - name: b
    match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: ge, value: 16}]}}
    action: {deny: {errno: EACCES}}
  - name: allow-7
    match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: eq, value: 7}]}}
    action: {allow: {}}
)");
  ASSERT_NE(p, nullptr);
  CompileResult r = Compile(*p);
  EXPECT_THAT(r.notify_syscalls, IsEmpty());
  // The allow rule equals the profile default: left out.
  EXPECT_EQ(r.syscalls.at(0).rules.size(), 2u) << Dump(r.syscalls.at(0));
  EXPECT_TRUE(r.CompiledInKernel(2, "getpriority"));
  // Under an errno default the allow rest cannot be written next to three
  // compiled rules: everything goes to the agent.
  CompileOptions o;
  o.profile_default = SeccompAction::Errno(EPERM);
  r = Compile(*p, o);
  EXPECT_THAT(r.notify_syscalls, ElementsAre("getpriority"));
}

TEST(CompilerTest, WhatStaysWithTheAgent) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
plugins: [{name: opa, address: "unix:///run/opa.sock"}]
rules:
  - name: tenant
    match: {containers: {id: "web-*"}, syscalls: [chmod]}
    action: {deny: {}}
  - name: stdout
    match: {syscalls: [write], args: {fd: 1}}
    action: {deny: {}}
  - name: sock
    match: {syscalls: [connect], args: {sockaddr: {family: inet}}}
    action: {deny: {}}
  - name: ret
    match: {syscalls: [getuid]}
    action: {return: {value: 0}}
  - name: ask
    match: {syscalls: [getgid]}
    action: {plugin: opa}
  - name: twice
    match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: ge, value: 1}, {index: 0, op: le, value: 3}]}}
    action: {deny: {}}
  - name: any
    action: {log: {}}
)");
  ASSERT_NE(p, nullptr);
  CompileResult r = Compile(*p);
  EXPECT_THAT(r.notify_syscalls,
              ElementsAre("chmod", "connect", "getgid", "getpriority", "getuid", "write"));
  EXPECT_THAT(DispFor(r, "tenant", "chmod")->reason, HasSubstr("container match"));
  EXPECT_THAT(DispFor(r, "stdout", "write")->reason, HasSubstr("fd condition"));
  EXPECT_THAT(DispFor(r, "sock", "connect")->reason, HasSubstr("sockaddr"));
  EXPECT_THAT(DispFor(r, "ret", "getuid")->reason, HasSubstr("action return"));
  EXPECT_THAT(DispFor(r, "ask", "getgid")->reason, HasSubstr("action plugin"));
  EXPECT_THAT(DispFor(r, "twice", "getpriority")->reason,
              HasSubstr("two conditions on argument 0"));
  // The any-syscall rule applies to every decided syscall, adds none.
  EXPECT_THAT(DispFor(r, "any", "chmod")->reason, HasSubstr("any syscall"));
  EXPECT_EQ(r.dispositions.size(), 6u * 2u);
}

TEST(CompilerTest, DenyByDefaultPolicyKeepsTheRestWithTheAgent) {
  // The agent allows the runtime's own calls (runtime phase) when no rule
  // matches, so an unmatched call can never be refused by the kernel.
  auto p = Load(R"(version: 1
default_action: {deny: {errno: EPERM}}
rules:
  - name: allow-prio-0
    match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: eq, value: 0}]}}
    action: {allow: {}}
)");
  ASSERT_NE(p, nullptr);
  CompileResult r = Compile(*p);
  EXPECT_TRUE(r.CompiledInKernel(0, "getpriority"));
  EXPECT_EQ(
      Dump(r.syscalls.at(0)),
      R"({"names":["getpriority"],"action":"SCMP_ACT_NOTIFY","args":[{"index":0,"value":0,"valueTwo":0,"op":"SCMP_CMP_NE"}]})"
      "\n");
}

TEST(CompilerTest, MultiBitMaskedEqRestIsNotExpressible) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: m
    match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: masked_eq, mask: 0xff, value: 0x11}]}}
    action: {deny: {}}
  - name: l
    match: {syscalls: [getpriority]}
    action: {log: {}}
)");
  ASSERT_NE(p, nullptr);
  CompileResult r = Compile(*p);
  EXPECT_FALSE(r.CompiledInKernel(0, "getpriority"));
  EXPECT_EQ(Dump(r.syscalls.at(0)), R"({"names":["getpriority"],"action":"SCMP_ACT_NOTIFY"})"
                                    "\n");
}

TEST(CompilerTest, CompileOffAndNotifyOnly) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: no-mkdir
    match: {syscalls: [mkdir]}
    action: {deny: {errno: EACCES}}
  - name: no-packet
    match: {syscalls: [socket], args: {scalars: [{index: 0, op: eq, value: 17}]}}
    action: {deny: {}}
)");
  ASSERT_NE(p, nullptr);
  CompileOptions off;
  off.compile = false;
  CompileResult r = Compile(*p, off);
  EXPECT_THAT(r.notify_syscalls, ElementsAre("mkdir", "socket"));
  EXPECT_THAT(DispFor(r, "no-mkdir", "mkdir")->reason, "compilation off");
  CompileOptions only;
  only.notify_only = {"socket"};
  r = Compile(*p, only);
  EXPECT_THAT(r.notify_syscalls, ElementsAre("socket"));
  EXPECT_TRUE(r.CompiledInKernel(0, "mkdir"));
  EXPECT_FALSE(r.CompiledInKernel(1, "socket"));
}

TEST(CompilerTest, BigValuesStayExactInJson) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: big
    match: {syscalls: [getpriority], args: {scalars: [{index: 5, op: masked_eq, mask: 0xffffffffffffffff, value: 18446744073709551615}]}}
    action: {deny: {}}
)");
  ASSERT_NE(p, nullptr);
  CompileResult r = Compile(*p);
  const std::string s = r.KernelRules().at(0).ToJson().dump();
  EXPECT_THAT(s, HasSubstr(R"("value":18446744073709551615,"valueTwo":18446744073709551615)"));
  auto back = nlohmann::ordered_json::parse(s);
  EXPECT_EQ(back["args"][0]["value"].get<uint64_t>(), ~0ull);
  EXPECT_EQ(back.dump(), s);
}

TEST(CompilerTest, BuildSeccompFilterAcceptsEveryShape) {
  auto p = Load(R"(version: 1
default_action: {allow: {}}
rules:
  - name: a
    match: {syscalls: [unshare], args: {scalars: [{index: 0, op: masked_eq, mask: 0x10000000, value: 0x10000000}]}}
    action: {deny: {}}
  - name: b
    match: {syscalls: [unshare]}
    action: {log: {}}
  - name: c
    match: {syscalls: [mkdir]}
    action: {deny: {errno: EACCES}}
)");
  ASSERT_NE(p, nullptr);
  auto f = BuildSeccompFilter(Compile(*p));
  ASSERT_TRUE(f.ok()) << f.status();
  CompileResult bad = Compile(*p);
  ASSERT_EQ(bad.syscalls.at(1).syscall, "unshare");
  bad.syscalls.at(1).rules.at(0).args.at(0).op = "SCMP_CMP_WHAT";
  EXPECT_FALSE(BuildSeccompFilter(bad).ok());
}

// ---- Against the real kernel -------------------------------------------

// Errnos the test policies deny with; anything else means "the call ran".
const int kTestErrnos[] = {ELIBBAD, EREMCHG, ENOTNAM, EACCES};

int Outcome(long ret, int err) {
  if (ret != -1) return 0;
  for (int e : kTestErrnos) {
    if (err == e) return e;
  }
  return 0;
}

struct Call {
  uint64_t a0, a1;
};

std::vector<Call> Calls() {
  const uint64_t v0[] = {0,          1,          2,    3,          4,
                         5,          7,          16,   17,         18,
                         0x10000000, 0x10000011, 0x11, 0xffffffff, (1ull << 32) | 17,
                         ~0ull - 1,  ~0ull};
  const uint64_t v1[] = {0, 7, ~0ull};
  std::vector<Call> out;
  for (uint64_t a : v0) {
    for (uint64_t b : v1) out.push_back({a, b});
  }
  return out;
}

struct KernelRun {
  std::vector<int> outcomes;   // per call
  std::vector<bool> notified;  // per call
  int notifications = 0;
};

// Forks a child that loads the compiled filter, hands its listener to us
// and makes every call with getpriority(a0, a1); a supervisor thread
// answers notifications with policy.Evaluate (deny -> errno, else CONTINUE).
KernelRun RunInKernel(const CompiledPolicy& policy, const CompileResult& compiled) {
  KernelRun run;
  const std::vector<Call> calls = Calls();
  int sp[2], pp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0 || pipe2(pp, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "socketpair/pipe: " << strerror(errno);
    return run;
  }
  UniqueFd sock_parent(sp[0]), sock_child(sp[1]), pipe_r(pp[0]), pipe_w(pp[1]);
  auto filter = BuildSeccompFilter(compiled);
  if (!filter.ok()) {
    ADD_FAILURE() << filter.status();
    return run;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    // Child: only async-signal-safe calls and raw syscalls from here.
    if (seccomp_load(filter->get()) != 0) _exit(10);
    int lfd = seccomp_notify_fd(filter->get());
    char byte = lfd >= 0 ? 1 : 0;
    struct msghdr msg = {};
    struct iovec iov = {&byte, 1};
    char cbuf[CMSG_SPACE(sizeof(int))] = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (lfd >= 0) {
      msg.msg_control = cbuf;
      msg.msg_controllen = sizeof(cbuf);
      struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &lfd, sizeof(int));
    }
    if (sendmsg(sock_child.get(), &msg, 0) != 1) _exit(11);
    if (lfd >= 0) close(lfd);  // the supervisor holds it now
    for (const Call& c : calls) {
      errno = 0;
      long ret = syscall(SYS_getpriority, c.a0, c.a1);
      int out = Outcome(ret, errno);
      if (write(pipe_w.get(), &out, sizeof(out)) != sizeof(out)) _exit(12);
    }
    _exit(0);
  }
  pipe_w.reset();
  sock_child.reset();
  // Receive the listener (or "none").
  char byte = 0;
  struct msghdr msg = {};
  struct iovec iov = {&byte, 1};
  char cbuf[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  UniqueFd listener;
  if (recvmsg(sock_parent.get(), &msg, 0) == 1 && byte == 1) {
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (c != nullptr && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      memcpy(&fd, CMSG_DATA(c), sizeof(int));
      listener.reset(fd);
    }
  }
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<Call> seen;
  std::thread supervisor([&] {
    if (!listener) return;
    struct seccomp_notif* req = nullptr;
    struct seccomp_notif_resp* resp = nullptr;
    if (seccomp_notify_alloc(&req, &resp) != 0) return;
    while (!stop.load()) {
      struct pollfd pfd = {listener.get(), POLLIN, 0};
      if (poll(&pfd, 1, 50) <= 0) continue;
      if (pfd.revents & (POLLHUP | POLLERR)) break;
      memset(req, 0, sizeof(*req));
      if (seccomp_notify_receive(listener.get(), req) != 0) continue;
      SyscallEvent ev;
      ContainerInfo ci;
      ev.container = &ci;
      char* name = seccomp_syscall_resolve_num_arch(req->data.arch, req->data.nr);
      ev.syscall = name != nullptr ? name : "";
      free(name);
      for (int i = 0; i < 6; ++i) ev.args[i] = req->data.args[i];
      {
        std::lock_guard<std::mutex> l(mu);
        seen.push_back({ev.args[0], ev.args[1]});
      }
      CompiledPolicy::Verdict v = policy.Evaluate(ev);
      memset(resp, 0, sizeof(*resp));
      resp->id = req->id;
      if (v.action->kind_case() == v1::Action::kDeny) {
        resp->error = -v.action->deny().errno_code();
      } else {
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
      }
      seccomp_notify_respond(listener.get(), resp);
    }
    seccomp_notify_free(req, resp);
  });
  for (size_t i = 0; i < calls.size(); ++i) {
    struct pollfd pfd = {pipe_r.get(), POLLIN, 0};
    if (poll(&pfd, 1, 10000) <= 0) {
      ADD_FAILURE() << "child stalled at call " << i;
      kill(pid, SIGKILL);
      break;
    }
    int out = -1;
    if (read(pipe_r.get(), &out, sizeof(out)) != sizeof(out)) {
      ADD_FAILURE() << "child died at call " << i;
      break;
    }
    run.outcomes.push_back(out);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  stop = true;
  supervisor.join();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  for (const Call& c : calls) {
    bool hit = false;
    for (const Call& s : seen) hit = hit || (s.a0 == c.a0 && s.a1 == c.a1);
    run.notified.push_back(hit);
  }
  run.notifications = static_cast<int>(seen.size());
  return run;
}

struct DiffCase {
  const char* name;
  const char* yaml;
  int min_kernel_decided;  // calls the kernel must decide with compilation on
};

class KernelDifferentialTest : public ::testing::TestWithParam<DiffCase> {};

TEST_P(KernelDifferentialTest, CompiledFilterDecidesLikeEvaluate) {
  auto p = Load(GetParam().yaml);
  ASSERT_NE(p, nullptr);
  const std::vector<Call> calls = Calls();
  std::vector<int> want;
  std::vector<int> rule_of;
  for (const Call& c : calls) {
    SyscallEvent ev;
    ContainerInfo ci;
    ev.container = &ci;
    ev.syscall = "getpriority";
    ev.args[0] = c.a0;
    ev.args[1] = c.a1;
    CompiledPolicy::Verdict v = p->Evaluate(ev);
    want.push_back(v.action->kind_case() == v1::Action::kDeny ? v.action->deny().errno_code() : 0);
    rule_of.push_back(v.rule_index);
  }
  for (bool compile : {true, false}) {
    CompileOptions o;
    o.compile = compile;
    CompileResult r = Compile(*p, o);
    KernelRun run = RunInKernel(*p, r);
    ASSERT_EQ(run.outcomes.size(), calls.size());
    int kernel_decided = 0;
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(run.outcomes[i], want[i])
          << (compile ? "compiled" : "agent only") << " getpriority(" << calls[i].a0 << ", "
          << calls[i].a1 << ")";
      const bool kernel = rule_of[i] >= 0 && r.CompiledInKernel(rule_of[i], "getpriority");
      // A call decided by a compiled rule never reaches the agent; every
      // other call of a notify syscall does.
      if (kernel) {
        EXPECT_FALSE(run.notified[i])
            << "getpriority(" << calls[i].a0 << ", " << calls[i].a1 << ")";
        ++kernel_decided;
      }
      if (!compile) {
        EXPECT_TRUE(run.notified[i]);
      }
    }
    if (compile) {
      EXPECT_GE(kernel_decided, GetParam().min_kernel_decided);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, KernelDifferentialTest,
                         ::testing::Values(DiffCase{"EqWithAgentRest", R"(version: 1
default_action: {allow: {}}
rules:
  - {name: log-1, match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: eq, value: 1}]}}, action: {log: {}}}
  - {name: deny-17, match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: eq, value: 17}]}}, action: {deny: {errno: 80}}}
  - {name: deny-1-too, match: {syscalls: [getpriority], args: {scalars: [{index: 1, op: eq, value: 7}]}}, action: {deny: {errno: 78}}}
)",
                                                    3},
                                           DiffCase{"OneBitMask", R"(version: 1
default_action: {allow: {}}
rules:
  - {name: bit, match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: masked_eq, mask: 0x10000000, value: 0x10000000}]}}, action: {deny: {errno: 78}}}
  - {name: log, match: {syscalls: [getpriority]}, action: {log: {}}}
)",
                                                    6},
                                           DiffCase{"TwoConditionsNoAgent", R"(version: 1
default_action: {allow: {}}
rules:
  - {name: r, match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: ge, value: 5}, {index: 1, op: ne, value: 7}]}}, action: {deny: {errno: 118}}}
)",
                                                    20},
                                           DiffCase{"SameErrnoRanges", R"(version: 1
default_action: {allow: {}}
rules:
  - {name: lo, match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: le, value: 2}]}}, action: {deny: {errno: 80}}}
  - {name: hi, match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: gt, value: 16}]}}, action: {deny: {errno: 78}}}
  - {name: seven, match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: eq, value: 7}]}}, action: {allow: {}}}
)",
                                                    30},
                                           DiffCase{"DenyByDefault", R"(version: 1
default_action: {deny: {errno: 118}}
rules:
  - {name: zero, match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: eq, value: 0}]}}, action: {allow: {}}}
)",
                                                    3},
                                           DiffCase{"FallbackToAgent", R"(version: 1
default_action: {allow: {}}
rules:
  - {name: m, match: {syscalls: [getpriority], args: {scalars: [{index: 0, op: masked_eq, mask: 0xff, value: 0x11}]}}, action: {deny: {errno: 80}}}
  - {name: l, match: {syscalls: [getpriority], args: {scalars: [{index: 1, op: eq, value: 7}]}}, action: {deny: {errno: EACCES}}}
)",
                                                    0}),
                         [](const ::testing::TestParamInfo<DiffCase>& i) {
                           return std::string(i.param.name);
                         });

}  // namespace
}  // namespace seccomp_agent
