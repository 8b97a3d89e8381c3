// ActionRouter's fast path with a real PluginDispatcher and an in-process
// plugin: a cached plain decision is answered by TryQuickReply, counted,
// labelled for the decision log, and allocates nothing.
#include "agent/engine/action_router.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "agent/plugin/testing/fake_plugin.h"
#include "agent/plugin/testing/test_util.h"
#include "agent/seccomp/unotify.h"
#include "agent/testing/allocations.h"
#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

namespace v1 = ::seccompagent::v1;
using plugin::testing::Container;
using plugin::testing::DecideSync;
using plugin::testing::FakePlugin;
using plugin::testing::OpenatEvent;
using plugin::testing::SocketPath;

// Longer than a std::string's inline buffer: a copy of the label, the key
// or the name would allocate.
constexpr char kPlugin[] = "a-plugin-name-longer-than-sixteen";

class ActionRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    address_ = "unix://" + SocketPath("r");
    fake_.set_responder([](const v1::Notification&) {
      v1::Decision d;
      d.mutable_deny()->set_errno_code(EACCES);
      d.mutable_cache()->set_scope(v1::CacheHint::SCOPE_SYSCALL_CONTAINER);
      d.mutable_cache()->set_ttl_ms(60000);
      return d;
    });
    ASSERT_TRUE(fake_.Start(address_).ok());
    v1::PluginConfig pc;
    pc.set_name(kPlugin);
    pc.set_address(address_);
    pc.set_timeout_ms(5000);
    auto d = plugin::PluginDispatcher::Create({pc}, plugin::DispatcherOptions{});
    ASSERT_TRUE(d.ok()) << d.status();
    plugins_ = std::move(*d);
    router_ = std::make_unique<ActionRouter>(DefaultUnotify(), nullptr, plugins_.get());
    action_.mutable_plugin()->set_name(kPlugin);
  }

  void TearDown() override {
    router_.reset();
    plugins_.reset();
    fake_.Stop();
    unlink(address_.substr(strlen("unix://")).c_str());
  }

  std::string address_;
  FakePlugin fake_;
  std::unique_ptr<plugin::PluginDispatcher> plugins_;
  std::unique_ptr<ActionRouter> router_;
  v1::Action action_;
  ContainerInfo c_ = Container("a-container-id-longer-than-the-small-string-buffer");
  SyscallEvent ev_ = OpenatEvent(&c_, "/etc/passwd");
};

TEST_F(ActionRouterTest, AQuickReplyAllocatesNothing) {
  ActionHandler::QuickReply q;
  EXPECT_FALSE(router_->TryQuickReply(ev_, action_, &q)) << "empty cache";
  ASSERT_EQ(DecideSync(*plugins_, kPlugin, ev_).result.kind, plugin::PluginResult::Kind::kAction);
  ASSERT_TRUE(router_->TryQuickReply(ev_, action_, &q));  // this thread's key buffer grows once
  int hits = 0, allocations = -1;
  {
    testing::CountAllocations counted;
    for (int i = 0; i < 100; ++i) {
      ActionHandler::QuickReply r;
      hits += router_->TryQuickReply(ev_, action_, &r);
      q = std::move(r);
    }
    allocations = counted.count();
  }
  EXPECT_EQ(hits, 100);
  EXPECT_EQ(allocations, 0);
  EXPECT_EQ(q.action, "deny");
  EXPECT_EQ(q.backend, "plugin:a-plugin-name-longer-than-sixteen (cached)");
  EXPECT_EQ(q.reply.Resp(7).error, -EACCES);
  EXPECT_EQ(fake_.requests(), 1) << "hits send nothing";
  plugin::PluginStats s = *plugins_->StatsFor(kPlugin);
  EXPECT_EQ(s.calls, 102u);
  EXPECT_EQ(s.cache_hits, 101u);
  EXPECT_EQ(s.cache_misses, 1u);
  EXPECT_EQ(s.decisions, 102u);
  EXPECT_GE(s.latency_buckets[0], 101u) << "a hit is counted in the first latency bucket";
}

TEST_F(ActionRouterTest, UnknownPluginOrOtherActionIsNoQuickReply) {
  ASSERT_EQ(DecideSync(*plugins_, kPlugin, ev_).result.kind, plugin::PluginResult::Kind::kAction);
  ActionHandler::QuickReply q;
  v1::Action other;
  other.mutable_plugin()->set_name("not-declared");
  EXPECT_FALSE(router_->TryQuickReply(ev_, other, &q));
  v1::Action allow;
  allow.mutable_allow();
  EXPECT_FALSE(router_->TryQuickReply(ev_, allow, &q));
  EXPECT_TRUE(router_->TryQuickReply(ev_, action_, &q));
}

}  // namespace
}  // namespace seccomp_agent
