#include "agent/engine/substitute_plan.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <chrono>
#include <cstring>
#include <future>

#include "gtest/gtest.h"

namespace seccomp_agent {

using injector::PointerArg;
using injector::Ruleset;
using injector::Substitute;
namespace {

SyscallEvent Openat(const std::string& path, uint64_t dirfd = static_cast<uint32_t>(AT_FDCWD),
                    int flags = O_RDONLY, mode_t mode = 0) {
  SyscallEvent ev;
  ev.arch = AUDIT_ARCH_X86_64;
  ev.nr = __NR_openat;
  ev.syscall = "openat";
  ev.args[0] = dirfd;
  ev.args[1] = 0x7fff0000;
  ev.args[2] = static_cast<uint32_t>(flags);
  ev.args[3] = mode;
  ev.path = path;
  return ev;
}

std::string PathOf(const Substitute& s) {
  int p = PointerArg(s.nr);
  return std::string(s.buf.c_str() + s.args[p]);
}

v1::RedirectOpen Redirect() {
  v1::RedirectOpen r;
  (*r.mutable_exact())["/etc/passwd"] = "/srv/fake-passwd";
  (*r.mutable_exact())["rel"] = "other";
  (*r.mutable_prefix())["/data"] = "/mnt/data";
  (*r.mutable_prefix())["/data/deep"] = "/mnt/deep";
  (*r.mutable_prefix())["/var/"] = "/alt";
  return r;
}

TEST(RedirectOpen, ExactMapKeepsFlagsAndMode) {
  auto p =
      PlanRedirectOpen(Openat("/etc/passwd", 5, O_WRONLY | O_CREAT | O_CLOEXEC, 0600), Redirect());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->rewritten);
  EXPECT_EQ(PathOf(p->sub), "/srv/fake-passwd");
  EXPECT_EQ(p->sub.nr, __NR_openat);
  EXPECT_EQ(p->sub.args[2], static_cast<uint64_t>(O_WRONLY | O_CREAT | O_CLOEXEC));
  EXPECT_EQ(p->sub.args[3], 0600u);
  // Absolute target: the dirfd plays no part.
  EXPECT_EQ(static_cast<int>(p->sub.args[0]), AT_FDCWD);
  EXPECT_TRUE(Validate(p->sub, __NR_openat, AUDIT_ARCH_X86_64, Ruleset::kKernel).ok());
}

TEST(RedirectOpen, RelativeTargetKeepsTheDirfd) {
  auto p = PlanRedirectOpen(Openat("rel", 7), Redirect());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(PathOf(p->sub), "other");
  EXPECT_EQ(static_cast<int>(p->sub.args[0]), 7);
  // Go passes AT_FDCWD sign-extended to 64 bits: same int.
  p = PlanRedirectOpen(Openat("rel", 0xffffffffffffff9cULL), Redirect());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(static_cast<int>(p->sub.args[0]), AT_FDCWD);
}

TEST(RedirectOpen, LongestPrefixOnSlashBorders) {
  auto p = PlanRedirectOpen(Openat("/data/x/y"), Redirect());
  EXPECT_EQ(PathOf(p->sub), "/mnt/data/x/y");
  p = PlanRedirectOpen(Openat("/data"), Redirect());
  EXPECT_EQ(PathOf(p->sub), "/mnt/data");
  p = PlanRedirectOpen(Openat("/data/deep/z"), Redirect());
  EXPECT_EQ(PathOf(p->sub), "/mnt/deep/z");
  p = PlanRedirectOpen(Openat("/database"), Redirect());  // not on a border
  EXPECT_FALSE(p->rewritten);
  EXPECT_EQ(PathOf(p->sub), "/database");
  p = PlanRedirectOpen(Openat("/var/log/x"), Redirect());  // "/var/" -> "/alt"
  EXPECT_EQ(PathOf(p->sub), "/alt/log/x");
}

TEST(RedirectOpen, NoMappingInjectsTheAgentsCopyUnchanged) {
  auto p = PlanRedirectOpen(Openat("/tmp/x", 9, O_RDONLY), Redirect());
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->rewritten);
  EXPECT_EQ(p->note, "no mapping");
  EXPECT_EQ(PathOf(p->sub), "/tmp/x");
}

TEST(RedirectOpen, OpenBecomesAnOpenSubstitute) {
  SyscallEvent ev;
  ev.arch = AUDIT_ARCH_X86_64;
  ev.nr = __NR_open;
  ev.syscall = "open";
  ev.args[1] = O_RDWR;
  ev.args[2] = 0644;
  ev.path = "/etc/passwd";
  auto p = PlanRedirectOpen(ev, Redirect());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->sub.nr, __NR_open);
  EXPECT_EQ(PathOf(p->sub), "/srv/fake-passwd");
  EXPECT_EQ(p->sub.args[1], static_cast<uint64_t>(O_RDWR));
  EXPECT_EQ(p->sub.args[2], 0644u);
  EXPECT_TRUE(Validate(p->sub, __NR_open, AUDIT_ARCH_X86_64, Ruleset::kEmulation).ok());
  EXPECT_FALSE(Validate(p->sub, __NR_open, AUDIT_ARCH_X86_64, Ruleset::kKernel).ok());
}

TEST(RedirectOpen, FailsClosedWithoutAPathOrOnOtherSyscalls) {
  SyscallEvent ev = Openat("/x");
  ev.path.reset();
  ev.decode_error = "EFAULT";
  EXPECT_FALSE(PlanRedirectOpen(ev, Redirect()).ok());
  ev = Openat("/x");
  ev.nr = __NR_write;
  EXPECT_FALSE(PlanRedirectOpen(ev, Redirect()).ok());
}

SyscallEvent BindEv(const std::string& raw, int family, const std::string& addr,
                    std::optional<uint16_t> port) {
  SyscallEvent ev;
  ev.arch = AUDIT_ARCH_X86_64;
  ev.nr = __NR_bind;
  ev.syscall = "bind";
  ev.args[0] = 4;
  ev.args[2] = raw.size();
  Sockaddr sa;
  sa.family = family;
  sa.address = addr;
  sa.port = port;
  sa.raw.assign(raw.begin(), raw.end());
  ev.sockaddr = sa;
  return ev;
}

std::string In4(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return std::string(reinterpret_cast<const char*>(&a), sizeof(a));
}

std::string In6(const char* ip, uint16_t port, uint32_t scope) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  a.sin6_scope_id = scope;
  inet_pton(AF_INET6, ip, &a.sin6_addr);
  return std::string(reinterpret_cast<const char*>(&a), sizeof(a));
}

v1::RewriteBind BindMap() {
  v1::RewriteBind r;
  (*r.mutable_map())["0.0.0.0:80"] = "127.0.0.1:8080";
  (*r.mutable_map())["[::]:443"] = "[::1]:8443";
  (*r.mutable_map())["/run/app.sock"] = "/run/agent/app.sock";
  (*r.mutable_map())["@abs"] = "@other";
  (*r.mutable_map())["0.0.0.0:53"] = "[::1]:53";
  return r;
}

TEST(RewriteBind, Inet4) {
  auto p = PlanRewriteBind(BindEv(In4("0.0.0.0", 80), AF_INET, "0.0.0.0", 80), BindMap());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->rewritten);
  EXPECT_EQ(p->sub.buf, In4("127.0.0.1", 8080));
  EXPECT_EQ(p->sub.args[0], 4u);
  EXPECT_EQ(p->sub.args[2], sizeof(sockaddr_in));
  EXPECT_TRUE(Validate(p->sub, __NR_bind, AUDIT_ARCH_X86_64, Ruleset::kKernel).ok());
}

TEST(RewriteBind, Inet6KeepsScope) {
  auto p = PlanRewriteBind(BindEv(In6("::", 443, 3), AF_INET6, "::", 443), BindMap());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->rewritten);
  EXPECT_EQ(p->sub.buf, In6("::1", 8443, 3));
}

TEST(RewriteBind, PortOrAddressMismatchKeepsTheOriginalBytes) {
  std::string raw = In4("0.0.0.0", 81);
  auto p = PlanRewriteBind(BindEv(raw, AF_INET, "0.0.0.0", 81), BindMap());
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->rewritten);
  EXPECT_EQ(p->sub.buf, raw);
  raw = In4("10.0.0.1", 80);
  p = PlanRewriteBind(BindEv(raw, AF_INET, "10.0.0.1", 80), BindMap());
  EXPECT_FALSE(p->rewritten);
  EXPECT_EQ(p->sub.buf, raw);
}

TEST(RewriteBind, FamilyChangeIsRefused) {
  auto p = PlanRewriteBind(BindEv(In4("0.0.0.0", 53), AF_INET, "0.0.0.0", 53), BindMap());
  EXPECT_FALSE(p.ok());
}

TEST(RewriteBind, UnixPathAndAbstract) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  strcpy(un.sun_path, "/run/app.sock");
  std::string raw(reinterpret_cast<const char*>(&un), offsetof(sockaddr_un, sun_path) + 14);
  auto p = PlanRewriteBind(BindEv(raw, AF_UNIX, "/run/app.sock", std::nullopt), BindMap());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->rewritten);
  const auto* got = reinterpret_cast<const sockaddr_un*>(p->sub.buf.data());
  EXPECT_EQ(got->sun_family, AF_UNIX);
  EXPECT_STREQ(got->sun_path, "/run/agent/app.sock");
  EXPECT_EQ(p->sub.args[2], offsetof(sockaddr_un, sun_path) + strlen("/run/agent/app.sock") + 1);

  auto a = PlanRewriteBind(BindEv(raw, AF_UNIX, "@abs", std::nullopt), BindMap());
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->sub.buf.substr(offsetof(sockaddr_un, sun_path)), std::string("\0other", 6));
}

TEST(RewriteBind, TextToSockaddr) {
  EXPECT_EQ(*SockaddrFromText("127.0.0.1:8080", AF_INET), In4("127.0.0.1", 8080));
  EXPECT_FALSE(SockaddrFromText("127.0.0.1", AF_INET).ok());
  EXPECT_FALSE(SockaddrFromText("1.2.3.4:70000", AF_INET).ok());
  EXPECT_FALSE(SockaddrFromText("[::1:80", AF_INET6).ok());
  EXPECT_FALSE(SockaddrFromText(std::string(200, 'x'), AF_UNIX).ok());
}

SyscallEvent WriteEv(const std::string& bytes, uint64_t count) {
  SyscallEvent ev;
  ev.arch = AUDIT_ARCH_X86_64;
  ev.nr = __NR_write;
  ev.syscall = "write";
  ev.args[0] = 1;
  ev.args[2] = count;
  ev.write_bytes = bytes;
  ev.write_count = count;
  return ev;
}

TEST(ReplaceWrite, ReplaceKeepsTheTasksCount) {
  v1::ReplaceWrite r;
  r.set_replace("xyz");
  auto p = PlanReplaceWrite(WriteEv("hello world\n", 12), r);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->sub.buf, "xyz");
  EXPECT_EQ(p->sub.args[2], 3u);
  EXPECT_EQ(p->sub.task_count, 12u);  // what the task sees when fully written
  EXPECT_TRUE(Validate(p->sub, __NR_write, AUDIT_ARCH_X86_64, Ruleset::kKernel).ok());
}

TEST(ReplaceWrite, RedactRegex) {
  v1::ReplaceWrite r;
  r.set_redact_regex("password=[^ \n]+");
  auto p = PlanReplaceWrite(WriteEv("user=a password=hunter2 ok\n", 27), r);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->rewritten);
  EXPECT_EQ(p->sub.buf, "user=a [REDACTED] ok\n");
  EXPECT_EQ(p->sub.task_count, 27u);
}

TEST(ReplaceWrite, RedactionIsLiteralAndOnlyTheCountIsUsed) {
  v1::ReplaceWrite r;
  r.set_redact_regex("[0-9]+");
  r.set_redaction("$&$1\\0\\");
  // Captured more than count (never happens, but only count bytes count).
  auto p = PlanReplaceWrite(WriteEv("a1b22c333", 5), r);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->sub.buf, "a$&$1\\0\\b$&$1\\0\\");
}

// Runs PlanReplaceWrite on another thread; gives up (and ends the test
// binary, the thread cannot be stopped) after a deadline no linear-time
// engine comes near: RE2 takes milliseconds here, std::regex ran > 20 s.
absl::StatusOr<Plan> PlanWithinDeadline(const SyscallEvent& ev, const v1::ReplaceWrite& r) {
  auto f = std::async(std::launch::async, [&] { return PlanReplaceWrite(ev, r); });
  if (f.wait_for(std::chrono::seconds(45)) != std::future_status::ready) {
    ADD_FAILURE() << "redact_regex \"" << r.redact_regex() << "\" still running after 45 s";
    fflush(stdout);
    _exit(1);
  }
  return f.get();
}

TEST(ReplaceWrite, CatastrophicPatternOn4KiBFinishesWithTheRightOutput) {
  v1::ReplaceWrite r;
  r.set_redact_regex(R"((\w+\s?)+:)");
  std::string words;
  while (words.size() < 4096) words += "ab ";
  words.resize(4096);
  // No colon anywhere: the backtracking worst case, and no match.
  auto none = PlanWithinDeadline(WriteEv(words, words.size()), r);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->rewritten);
  EXPECT_EQ(none->sub.buf, words);
  // A colon at the end: the whole run of words is one match.
  std::string colon = words;
  colon.back() = ':';
  auto all = PlanWithinDeadline(WriteEv(colon, colon.size()), r);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->sub.buf, "[REDACTED]");
  EXPECT_EQ(all->sub.task_count, 4096u);
  // And the usual use: "key: value" lines.
  auto kv = PlanWithinDeadline(WriteEv("user: bob\n", 10), r);
  ASSERT_TRUE(kv.ok()) << kv.status();
  EXPECT_EQ(kv->sub.buf, "[REDACTED] bob\n");
}

TEST(ReplaceWrite, MatchesBytesNotUtf8) {
  v1::ReplaceWrite r;
  r.set_redact_regex("k.y=[^ ]+");
  const std::string in("k\xffy=\x80\x81 rest");
  auto p = PlanReplaceWrite(WriteEv(in, in.size()), r);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->sub.buf, "[REDACTED] rest");
}

TEST(ReplaceWrite, RegexesRe2CannotRunInLinearTimeAreRefused) {
  v1::ReplaceWrite r;
  r.set_redact_regex(R"((a+)\1)");  // a backreference: std::regex accepted it
  auto p = PlanReplaceWrite(WriteEv("aaaa", 4), r);
  EXPECT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("RE2 cannot compile it"), std::string::npos)
      << p.status();
}

TEST(ReplaceWrite, NoMatchIsTheSameBytes) {
  v1::ReplaceWrite r;
  r.set_redact_regex("secret");
  auto p = PlanReplaceWrite(WriteEv("nothing here", 12), r);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->rewritten);
  EXPECT_EQ(p->sub.buf, "nothing here");
  EXPECT_EQ(p->sub.args[2], 12u);
}

TEST(ReplaceWrite, FailsClosedOnShortCaptureOrBadRegex) {
  v1::ReplaceWrite r;
  r.set_redact_regex("x");
  EXPECT_FALSE(PlanReplaceWrite(WriteEv("abc", 5000), r).ok());
  r.set_redact_regex("(unclosed");
  EXPECT_FALSE(PlanReplaceWrite(WriteEv("abc", 3), r).ok());
  v1::ReplaceWrite none;
  EXPECT_FALSE(PlanReplaceWrite(WriteEv("abc", 3), none).ok());
}

TEST(PlanAction, Dispatches) {
  v1::Action a;
  *a.mutable_redirect_open() = Redirect();
  auto p = PlanAction(Openat("/etc/passwd"), a);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(PathOf(p->sub), "/srv/fake-passwd");
  v1::Action deny;
  deny.mutable_deny()->set_errno_code(1);
  EXPECT_FALSE(PlanAction(Openat("/x"), deny).ok());
}

TEST(InjectorOptionsFromProto, ModesStrictAndErrno) {
  v1::InjectionSettings s;
  injector::InjectorOptions o = InjectorOptionsFromProto(s);
  EXPECT_EQ(o.mode, injector::Mode::kAuto);
  EXPECT_FALSE(o.strict);
  EXPECT_EQ(o.strict_errno, EPERM);
  s.set_mode(v1::InjectionSettings::KERNEL);
  s.set_strict(true);
  s.set_strict_errno(EACCES);
  o = InjectorOptionsFromProto(s);
  EXPECT_EQ(o.mode, injector::Mode::kKernel);
  EXPECT_TRUE(o.strict);
  EXPECT_EQ(o.strict_errno, EACCES);
  s.set_mode(v1::InjectionSettings::EMULATE);
  EXPECT_EQ(InjectorOptionsFromProto(s).mode, injector::Mode::kEmulate);
}

}  // namespace
}  // namespace seccomp_agent
