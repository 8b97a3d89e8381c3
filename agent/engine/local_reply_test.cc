#include "agent/engine/local_reply.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

namespace v1 = ::seccompagent::v1;

TEST(LocalReply, AllowAndLogContinue) {
  v1::Action allow, log;
  allow.mutable_allow();
  log.mutable_log();
  for (const v1::Action* a : {&allow, &log}) {
    std::optional<LocalReply> r = LocalReplyFor(*a);
    ASSERT_TRUE(r.has_value());
    seccomp_notif_resp resp = r->Resp(7);
    EXPECT_EQ(resp.id, 7u);
    EXPECT_EQ(resp.flags, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
    EXPECT_EQ(resp.error, 0);
    EXPECT_EQ(resp.val, 0);
    EXPECT_EQ(r->effect, Effect::kAllowed);
    EXPECT_EQ(r->result, "continue");
  }
}

TEST(LocalReply, DenyIsANegativeErrorWithoutContinue) {
  v1::Action a;
  a.mutable_deny()->set_errno_code(EACCES);
  std::optional<LocalReply> r = LocalReplyFor(a);
  ASSERT_TRUE(r.has_value());
  seccomp_notif_resp resp = r->Resp(9);
  EXPECT_EQ(resp.flags, 0u);
  EXPECT_EQ(resp.error, -EACCES);
  EXPECT_EQ(resp.val, 0);
  EXPECT_EQ(r->effect, Effect::kDenied);
  EXPECT_EQ(r->result, "EACCES");
}

TEST(LocalReply, ReturnSpoofsTheValue) {
  v1::Action a;
  a.mutable_return_()->set_value(12);
  std::optional<LocalReply> r = LocalReplyFor(a);
  ASSERT_TRUE(r.has_value());
  seccomp_notif_resp resp = r->Resp(1);
  EXPECT_EQ(resp.flags, 0u);
  EXPECT_EQ(resp.error, 0);
  EXPECT_EQ(resp.val, 12);
  EXPECT_EQ(r->effect, Effect::kReturned);
  EXPECT_EQ(r->result, "12");
}

TEST(LocalReply, SubstitutionsAndPluginsAreNotLocal) {
  v1::Action redirect, plugin, none;
  (*redirect.mutable_redirect_open()->mutable_exact())["/a"] = "/b";
  plugin.mutable_plugin()->set_name("p");
  EXPECT_FALSE(LocalReplyFor(redirect).has_value());
  EXPECT_FALSE(LocalReplyFor(plugin).has_value());
  EXPECT_FALSE(LocalReplyFor(none).has_value());
}

}  // namespace
}  // namespace seccomp_agent
