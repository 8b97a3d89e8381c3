#include "agent/policy/action_checks.h"

#include <sys/socket.h>

#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

namespace v1 = ::seccompagent::v1;
using namespace std::string_literals;

TEST(ActionChecks, ErrnoAndReturn) {
  EXPECT_FALSE(ValidErrno(0));
  EXPECT_TRUE(ValidErrno(1));
  EXPECT_TRUE(ValidErrno(4095));
  EXPECT_FALSE(ValidErrno(4096));
  EXPECT_FALSE(ReturnReadsAsErrno(0));
  EXPECT_TRUE(ReturnReadsAsErrno(-1));
  EXPECT_TRUE(ReturnReadsAsErrno(-4095));
  EXPECT_FALSE(ReturnReadsAsErrno(-4096));
  EXPECT_FALSE(ReturnReadsAsErrno(12));
}

TEST(ActionChecks, NormalizedAbsolutePaths) {
  for (const std::string p : {"/", "/a", "/a/b.c", "/a/..b"}) {
    EXPECT_TRUE(IsNormalizedAbsolute(p)) << p;
  }
  for (const std::string& p : {""s, "a"s, "/a/"s, "//a"s, "/a/./b"s, "/a/../b"s, "/a\0b"s}) {
    EXPECT_FALSE(IsNormalizedAbsolute(p)) << p;
  }
  EXPECT_TRUE(InsideRoot("/r", "/r"));
  EXPECT_TRUE(InsideRoot("/r/x", "/r"));
  EXPECT_FALSE(InsideRoot("/rx", "/r"));
}

TEST(ActionChecks, PortsHaveARangeAndOnlyDigits) {
  uint32_t port = 0;
  EXPECT_TRUE(ParsePort("0", 0, &port));
  EXPECT_FALSE(ParsePort("0", 1, &port));  // a plugin address needs a real port
  EXPECT_TRUE(ParsePort("65535", 1, &port));
  EXPECT_EQ(port, 65535u);
  EXPECT_FALSE(ParsePort("65536", 0, &port));
  EXPECT_FALSE(ParsePort("+80", 0, &port));
  EXPECT_FALSE(ParsePort("", 0, &port));
}

TEST(ActionChecks, BindEndpoints) {
  EXPECT_EQ(*ParseBindEndpoint("127.0.0.1:0"), AF_INET);
  EXPECT_EQ(*ParseBindEndpoint("[::1]:8080"), AF_INET6);
  EXPECT_EQ(*ParseBindEndpoint("/run/a.sock"), AF_UNIX);
  EXPECT_EQ(*ParseBindEndpoint("@name"), AF_UNIX);
  const std::vector<std::string> bad = {
      "@",               // empty abstract name
      "@a\0b"s,          // NUL inside an abstract name (the plugin check had it, the policy not)
      "/run/a\0.sock"s,  // NUL in a path
      "/run/../a.sock",  // not normalized
      "/" + std::string(108, 'a'),  // longer than sun_path
      "127.0.0.1",                  // no port
      "127.0.0.1:65536",
      "[::1]8080",
      "host:80",  // a name, not an address
  };
  for (const std::string& s : bad) EXPECT_FALSE(ParseBindEndpoint(s).ok()) << s;
}

TEST(ActionChecks, WhichSyscallsEachSubstitutionAppliesTo) {
  EXPECT_TRUE(RedirectOpenAppliesTo("open"));
  EXPECT_TRUE(RedirectOpenAppliesTo("openat"));
  EXPECT_FALSE(RedirectOpenAppliesTo("openat2"));
  EXPECT_TRUE(RewriteBindAppliesTo("bind"));
  EXPECT_FALSE(RewriteBindAppliesTo("connect"));
  EXPECT_TRUE(ReplaceWriteAppliesTo("write"));
  EXPECT_FALSE(ReplaceWriteAppliesTo("pwrite64"));
}

TEST(ActionChecks, RedirectOpenMap) {
  const std::vector<std::string> roots = {"/srv"};
  v1::RedirectOpen ro;
  auto p = CheckRedirectOpenMap(ro, roots);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->field, "redirect_open");
  (*ro.mutable_exact())["/etc/hosts"] = "/srv/hosts";
  (*ro.mutable_prefix())["/data/"] = "/srv/data/";
  EXPECT_FALSE(CheckRedirectOpenMap(ro, roots).has_value());
  // Outside every root; with no roots at all.
  p = CheckRedirectOpenMap(ro, {"/other"});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->field, "redirect_open.exact[\"/etc/hosts\"]");
  EXPECT_NE(p->message.find("outside every redirect root (/other)"), std::string::npos);
  p = CheckRedirectOpenMap(ro, {});
  ASSERT_TRUE(p.has_value());
  EXPECT_NE(p->message.find("redirect_roots is empty"), std::string::npos);
  // A prefix whose key and target disagree on the trailing "/".
  v1::RedirectOpen bad_prefix;
  (*bad_prefix.mutable_prefix())["/data/"] = "/srv/data";
  p = CheckRedirectOpenMap(bad_prefix, roots);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->field, "redirect_open.prefix[\"/data/\"]");
  // "/" as a prefix, a relative source, a target escaping with "..".
  for (const auto& [key, target, prefix] : std::vector<std::tuple<std::string, std::string, bool>>{
           {"/", "/srv", true}, {"etc/hosts", "/srv/h", false}, {"/etc/h", "/srv/../etc", false}}) {
    v1::RedirectOpen r;
    (*(prefix ? r.mutable_prefix() : r.mutable_exact()))[key] = target;
    EXPECT_TRUE(CheckRedirectOpenMap(r, roots).has_value()) << key << " -> " << target;
  }
}

TEST(ActionChecks, RewriteBindMap) {
  v1::RewriteBind rb;
  ASSERT_TRUE(CheckRewriteBindMap(rb).has_value());
  (*rb.mutable_map())["0.0.0.0:80"] = "127.0.0.1:8080";
  (*rb.mutable_map())["@a"] = "/run/b.sock";
  EXPECT_FALSE(CheckRewriteBindMap(rb).has_value());
  (*rb.mutable_map())["[::]:80"] = "127.0.0.1:80";  // changes the family
  auto p = CheckRewriteBindMap(rb);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->field, "rewrite_bind.map[\"[::]:80\"]");
  EXPECT_NE(p->message.find("AF_INET6 address to an AF_INET"), std::string::npos);
  v1::RewriteBind nul;
  (*nul.mutable_map())["@a"] = "@b\0c"s;
  p = CheckRewriteBindMap(nul);
  ASSERT_TRUE(p.has_value());
  EXPECT_NE(p->message.find("NUL"), std::string::npos);
}

}  // namespace
}  // namespace seccomp_agent
