// The admin API over a real unix socket with a real gRPC client.
#include "agent/admin/admin_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "agent/admin/test_fixture.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/seccompagent/v1/admin.grpc.pb.h"

namespace seccomp_agent::admin {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class AdminServerTest : public testing::AdminFixture {
 protected:
  void SetUp() override {
    AdminFixture::SetUp();
    if (HasFatalFailure()) return;
    StartServer();
    channel_ = grpc::CreateChannel("unix:" + path_, grpc::InsecureChannelCredentials());
    stub_ = v1::AdminService::NewStub(channel_);
  }
  std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration d = absl::Seconds(10)) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(absl::ToChronoTime(absl::Now() + d));
    return c;
  }
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

TEST_F(AdminServerTest, SocketIsPrivate) {
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

TEST_F(AdminServerTest, SecondServerOnSamePathRefused) {
  AdminServer::Options o;
  o.socket_path = path_;
  o.containers = [] { return std::vector<ContainerSnapshot>{}; };
  o.policy = [] { return PolicySummary{}; };
  o.reload = []() -> absl::StatusOr<PolicySummary> { return PolicySummary{}; };
  o.broadcaster = &broadcaster_;
  auto s = AdminServer::Start(std::move(o));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kAlreadyExists) << s.status();
}

TEST_F(AdminServerTest, ListContainersSortedWithIdentityAndCounters) {
  v1::ListContainersResponse resp;
  grpc::Status s = stub_->ListContainers(Ctx().get(), v1::ListContainersRequest(), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.containers_size(), 2);
  const v1::ContainerEntry& a = resp.containers(0);  // the older one first
  EXPECT_EQ(a.id(), "0123456789abcdef0123");
  EXPECT_EQ(a.init_pid(), 4242);
  EXPECT_EQ(a.runtime(), "runc");
  EXPECT_EQ(a.pod_namespace(), "prod");
  EXPECT_EQ(a.pod_name(), "web-0");
  EXPECT_EQ(a.container_name(), "nginx");
  EXPECT_EQ(a.listener_metadata(), "profile=web");
  EXPECT_EQ(a.bundle(), "/run/bundles/a");
  EXPECT_EQ(a.annotations().at("io.kubernetes.pod.namespace"), "prod");
  EXPECT_EQ(a.counters().notifications(), 10u);
  EXPECT_EQ(a.counters().denied(), 3u);
  EXPECT_EQ(a.counters().rate_limited(), 4u);
  EXPECT_DOUBLE_EQ(a.counters().throttled_seconds(), 1.5);
  EXPECT_DOUBLE_EQ(a.counters().rate_limit(), 100);
  EXPECT_DOUBLE_EQ(resp.containers(1).counters().rate_limit(), 0);
  EXPECT_EQ(resp.containers(1).id(), "plain");
  EXPECT_GT(resp.now_unix_nanos(), a.registered_unix_nanos());

  v1::ListContainersRequest req;
  req.set_pod_namespace("prod");
  resp.Clear();
  ASSERT_TRUE(stub_->ListContainers(Ctx().get(), req, &resp).ok());
  ASSERT_EQ(resp.containers_size(), 1);
  EXPECT_EQ(resp.containers(0).pod_name(), "web-0");
}

// With the engine's monotonic totals: those, not the sum of the live
// containers (which drops when one exits).
TEST_F(AdminServerTest, StatsTotalsComeFromTheEngineWhenGiven) {
  server_.reset();
  use_totals_ = true;
  totals_.notifications = 1000;
  totals_.allowed = 600;
  totals_.denied = 300;
  totals_.returned = 90;
  totals_.substituted = 10;
  StartServer();
  auto stub = v1::AdminService::NewStub(
      grpc::CreateChannel("unix:" + path_, grpc::InsecureChannelCredentials()));
  v1::GetStatsResponse resp;
  ASSERT_TRUE(stub->GetStats(Ctx().get(), v1::GetStatsRequest(), &resp).ok());
  EXPECT_EQ(resp.active_containers(), 2u);
  EXPECT_EQ(resp.totals().notifications(), 1000u);
  EXPECT_EQ(resp.totals().allowed(), 600u);
  EXPECT_EQ(resp.totals().denied(), 300u);
  EXPECT_EQ(resp.totals().returned(), 90u);
  EXPECT_EQ(resp.totals().substituted(), 10u);
}

TEST_F(AdminServerTest, StatsSumsContainersAndHandoff) {
  v1::GetStatsResponse resp;
  ASSERT_TRUE(stub_->GetStats(Ctx().get(), v1::GetStatsRequest(), &resp).ok());
  EXPECT_EQ(resp.active_containers(), 2u);
  EXPECT_EQ(resp.totals().notifications(), 12u);
  EXPECT_EQ(resp.totals().denied(), 5u);
  EXPECT_EQ(resp.totals().rate_limited(), 4u);
  EXPECT_DOUBLE_EQ(resp.totals().throttled_seconds(), 1.5);
  EXPECT_EQ(resp.handoff().connections(), 5u);
  EXPECT_EQ(resp.handoff().handoffs(), 2u);
  EXPECT_EQ(resp.handoff().rejected().at("not_listener"), 3u);
  EXPECT_EQ(resp.handoff().rejected().at("peer_uid"), 0u);
  EXPECT_EQ(static_cast<int>(resp.handoff().rejected().size()), kRejectReasonCount);
  EXPECT_EQ(resp.policy().source(), "/etc/seccomp-agent/policy.yaml");
  EXPECT_EQ(resp.policy().rules(), 3);
  EXPECT_GE(resp.uptime_seconds(), 0);
}

TEST_F(AdminServerTest, ReloadSucceedsAndFailureKeepsMessage) {
  v1::ReloadPolicyResponse resp;
  ASSERT_TRUE(stub_->ReloadPolicy(Ctx().get(), v1::ReloadPolicyRequest(), &resp).ok());
  EXPECT_EQ(resp.policy().rules(), 4);
  {
    std::lock_guard<std::mutex> l(mu_);
    reload_error_ = absl::InvalidArgumentError("policy.yaml:3: unknown action \"nuke\"");
  }
  grpc::Status s = stub_->ReloadPolicy(Ctx().get(), v1::ReloadPolicyRequest(), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "policy.yaml:3: unknown action \"nuke\"");
  EXPECT_EQ(reloads_, 2);
}

TEST_F(AdminServerTest, HealthCheck) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(Ctx().get(), HealthCheckRequest(), &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
  HealthCheckRequest named;
  named.set_service("seccompagent.v1.AdminService");
  ASSERT_TRUE(health->Check(Ctx().get(), named, &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
  // Stuck engine workers (Options::healthy false): NOT_SERVING until back.
  healthy_ = false;
  ASSERT_TRUE(health->Check(Ctx().get(), HealthCheckRequest(), &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::NOT_SERVING);
  healthy_ = true;
  ASSERT_TRUE(health->Check(Ctx().get(), HealthCheckRequest(), &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
  server_->SetServing(false);
  ASSERT_TRUE(health->Check(Ctx().get(), HealthCheckRequest(), &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::NOT_SERVING);
  named.set_service("nope");
  EXPECT_EQ(health->Check(Ctx().get(), named, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

void WaitForSubscribers(const Broadcaster& b, size_t n) {
  for (int i = 0; i < 500 && b.subscribers() != n; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(b.subscribers(), n);
}

TEST_F(AdminServerTest, WatchStreamsFilteredDecisions) {
  ContainerInfo web;
  web.id = "web";
  web.pod_namespace = "prod";
  web.pod_name = "web-0";
  ContainerInfo other;
  other.id = "other";
  auto ctx = Ctx();
  v1::WatchDecisionsRequest req;
  req.set_container_id("web");
  auto reader = stub_->WatchDecisions(ctx.get(), req);
  reader->WaitForInitialMetadata();
  WaitForSubscribers(broadcaster_, 1);
  Publish(other, "mkdir", "deny");
  Publish(web, "mkdir", "deny", 5000);
  Publish(web, "openat", "allow");
  v1::WatchDecisionsResponse ev;
  ASSERT_TRUE(reader->Read(&ev));
  ASSERT_TRUE(ev.has_decision());
  EXPECT_EQ(ev.decision().container_id(), "web");
  EXPECT_EQ(ev.decision().pod_name(), "web-0");
  EXPECT_EQ(ev.decision().syscall(), "mkdir");
  EXPECT_EQ(ev.decision().action(), "deny");
  EXPECT_EQ(ev.decision().result(), "EPERM");
  EXPECT_EQ(ev.decision().rule(), "no-mkdir");
  EXPECT_EQ(ev.decision().path(), "/tmp/x");
  EXPECT_EQ(ev.decision().pid(), 99);
  EXPECT_EQ(ev.decision().latency_nanos(), 5000);
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.decision().syscall(), "openat");
  ctx->TryCancel();
  while (reader->Read(&ev)) {
  }
  reader->Finish();
  WaitForSubscribers(broadcaster_, 0);  // the server noticed and unsubscribed
}

TEST_F(AdminServerTest, SlowWatcherIsToldWhatItLostAndNeverBlocksTheEngine) {
  ContainerInfo c;
  c.id = "c";
  auto ctx = Ctx();
  v1::WatchDecisionsRequest req;
  req.set_queue_size(4);
  auto reader = stub_->WatchDecisions(ctx.get(), req);
  reader->WaitForInitialMetadata();
  WaitForSubscribers(broadcaster_, 1);
  constexpr int kEvents = 200000;
  absl::Time t0 = absl::Now();
  for (int i = 0; i < kEvents; ++i) Publish(c, "mkdir", "deny");
  absl::Duration took = absl::Now() - t0;
  // The publisher never waited for the (not reading) client.
  EXPECT_LT(took, absl::Seconds(20));
  // Drain: decisions + dropped counts must account for every event.
  uint64_t decisions = 0, dropped = 0, notices = 0;
  v1::WatchDecisionsResponse ev;
  while (decisions + dropped < kEvents && reader->Read(&ev)) {
    if (ev.has_decision()) ++decisions;
    if (ev.has_dropped()) {
      EXPECT_GT(ev.dropped().count(), 0u);
      dropped += ev.dropped().count();
      ++notices;
    }
  }
  EXPECT_EQ(decisions + dropped, static_cast<uint64_t>(kEvents));
  EXPECT_GT(dropped, 0u) << "a 4-event queue kept up with " << kEvents << " events";
  EXPECT_GE(notices, 1u);
  EXPECT_EQ(broadcaster_.dropped_total(), dropped);
  ctx->TryCancel();
  reader->Finish();
}

TEST_F(AdminServerTest, TooManyWatchersRefused) {
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchDecisionsResponse>>> readers;
  for (int i = 0; i < 16; ++i) {
    ctxs.push_back(Ctx());
    readers.push_back(stub_->WatchDecisions(ctxs.back().get(), v1::WatchDecisionsRequest()));
    readers.back()->WaitForInitialMetadata();
  }
  WaitForSubscribers(broadcaster_, 16);
  auto ctx = Ctx();
  auto extra = stub_->WatchDecisions(ctx.get(), v1::WatchDecisionsRequest());
  v1::WatchDecisionsResponse ev;
  EXPECT_FALSE(extra->Read(&ev));
  EXPECT_EQ(extra->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  for (auto& c : ctxs) c->TryCancel();
  for (auto& r : readers) r->Finish();
}

// Runs in //agent/admin:admin_peer_uid_test (local, root): needs a real
// setuid(65534).
TEST_F(AdminServerTest, UnprivilegedPeerRejected) {
  ASSERT_EQ(geteuid(), 0u) << "needs root to setuid(65534)";
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  // Past the file mode (as if an operator loosened it): SO_PEERCRED must
  // still refuse the peer.
  ASSERT_EQ(chmod(path_.c_str(), 0666), 0);
  const std::string path = path_;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Raw calls only after fork in a threaded process.
    // Raw syscalls: glibc's setuid() broadcasts to threads the child
    // does not have (and may be interrupted by inherited gRPC fork state).
    if (syscall(SYS_setgid, 65534) != 0 || syscall(SYS_setuid, 65534) != 0) _exit(10);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path.c_str(), path.size());
    if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(11);
    // An HTTP/2 preface, as a gRPC client would send.
    static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // The server may already have closed it: no SIGPIPE, EPIPE is a pass.
    if (send(s, kPreface, sizeof(kPreface) - 1, MSG_NOSIGNAL) < 0) {
      _exit(errno == EPIPE || errno == ECONNRESET ? 0 : 14);
    }
    pollfd p{s, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) _exit(12);  // the server never closed it
    char buf[64];
    ssize_t n = read(s, buf, sizeof(buf));
    // Closed without a byte of HTTP/2 (a gRPC server would send SETTINGS).
    _exit(n == 0 || (n < 0 && errno == ECONNRESET) ? 0 : 13);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
  ASSERT_NE(WEXITSTATUS(status), 10)
      << "setuid(65534) fails here; run //agent/admin:admin_peer_uid_test (local)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the unprivileged peer was not closed unanswered";
  EXPECT_EQ(server_->rejected_connections(), 1u);
  // Root still gets in, and the rejection is visible in the stats.
  v1::GetStatsResponse resp;
  ASSERT_TRUE(stub_->GetStats(Ctx().get(), v1::GetStatsRequest(), &resp).ok());
  EXPECT_EQ(resp.admin_connections_rejected(), 1u);
}

// Control for the test above: the same raw exchange as root is answered
// (so "closed unanswered" really means rejected).
TEST_F(AdminServerTest, RootRawPeerGetsHttp2Settings) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path_.c_str(), path_.size());
  ASSERT_EQ(connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  ASSERT_EQ(write(s, kPreface, sizeof(kPreface) - 1), static_cast<ssize_t>(sizeof(kPreface) - 1));
  pollfd p{s, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10000), 1);
  char buf[64];
  ssize_t n = read(s, buf, sizeof(buf));
  EXPECT_GE(n, 9);  // at least one HTTP/2 frame header
  if (n >= 9) EXPECT_EQ(buf[3], 0x4) << "first frame is not SETTINGS";
  close(s);
  EXPECT_EQ(server_->rejected_connections(), 0u);
}

TEST(BroadcasterTest, DropsWhenFullAndReportsOnce) {
  Broadcaster b;
  ContainerInfo c;
  c.id = "c";
  SyscallEvent ev;
  ev.container = &c;
  ev.syscall = "mkdir";
  DecisionRecord r;
  r.event = &ev;
  r.action = "deny";
  b.OnDecision(r);  // no subscriber: nothing kept
  auto sub = b.Subscribe("", "", 3);
  for (int i = 0; i < 10; ++i) b.OnDecision(r);
  std::vector<DecisionEventCopy> out;
  EXPECT_EQ(sub->Next(absl::ZeroDuration(), &out), 7u);
  EXPECT_EQ(out.size(), 3u);
  out.clear();
  EXPECT_EQ(sub->Next(absl::Milliseconds(1), &out), 0u);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(b.dropped_total(), 7u);
  sub.reset();
  EXPECT_EQ(b.subscribers(), 0u);
}

}  // namespace
}  // namespace seccomp_agent::admin
