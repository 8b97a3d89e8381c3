// Test fixture: an AdminServer on a real unix socket in a fresh /tmp
// directory, backed by fake containers and a scriptable reload.
#ifndef SECCOMP_AGENT_ADMIN_TEST_FIXTURE_H_
#define SECCOMP_AGENT_ADMIN_TEST_FIXTURE_H_

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/admin/admin_server.h"
#include "agent/admin/broadcaster.h"
#include "agent/handoff/server.h"
#include "gtest/gtest.h"

namespace seccomp_agent::admin::testing {

class AdminFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    // Short path: sun_path holds 107 bytes; Bazel's TEST_TMPDIR can be longer.
    char tmpl[] = "/tmp/sa-admin-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/admin.sock";
    ContainerSnapshot a{};
    a.info.id = "0123456789abcdef0123";
    a.info.init_pid = 4242;
    a.info.runtime = "runc";
    a.info.pod_namespace = "prod";
    a.info.pod_name = "web-0";
    a.info.container_name = "nginx";
    a.info.metadata = "profile=web";
    a.info.bundle = "/run/bundles/a";
    a.info.annotations = {{"io.kubernetes.pod.namespace", "prod"}};
    a.notifications = 10;
    a.allowed = 6;
    a.denied = 3;
    a.returned = 1;
    a.rate_limited = 4;
    a.throttled_ns = 1'500'000'000;
    a.rate = 100;
    a.registered_unix_ns = absl::ToUnixNanos(absl::Now() - absl::Minutes(3));
    ContainerSnapshot b{};
    b.info.id = "plain";
    b.info.init_pid = 77;
    b.info.runtime = "crun";
    b.notifications = 2;
    b.denied = 2;
    b.registered_unix_ns = absl::ToUnixNanos(absl::Now() - absl::Seconds(5));
    containers_ = {b, a};  // out of order: the server sorts by age
    handoff_.connections = 5;
    handoff_.handoffs = 2;
    handoff_.rejected[static_cast<int>(RejectReason::kNotListener)] = 3;
  }

  void StartServer(mode_t mode = 0600) {
    AdminServer::Options o;
    o.socket_path = path_;
    o.socket_mode = mode;
    o.containers = [this] {
      std::lock_guard<std::mutex> l(mu_);
      return containers_;
    };
    o.policy = [this] {
      std::lock_guard<std::mutex> l(mu_);
      return policy_;
    };
    o.reload = [this]() -> absl::StatusOr<PolicySummary> {
      std::lock_guard<std::mutex> l(mu_);
      ++reloads_;
      if (!reload_error_.ok()) return reload_error_;
      policy_.rules += 1;
      return policy_;
    };
    o.handoff_stats = [this](v1::HandoffStats* s) { FillHandoffStats(handoff_, 1, s); };
    if (use_totals_) {
      o.totals = [this] {
        std::lock_guard<std::mutex> l(mu_);
        return totals_;
      };
    }
    o.broadcaster = &broadcaster_;
    o.healthy = [this] { return healthy_.load(); };
    auto s = AdminServer::Start(std::move(o));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }

  // StartServer passes totals_ as AdminServer::Options::totals when set.
  bool use_totals_ = false;
  EngineTotals totals_;

  void TearDown() override {
    server_.reset();
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }

  // Publishes one decision to the broadcaster like the engine would.
  void Publish(const ContainerInfo& c, const std::string& syscall, const std::string& action,
               int64_t latency_ns = 4000) {
    SyscallEvent ev;
    ev.container = &c;
    ev.pid = 99;
    ev.syscall = syscall;
    ev.path = "/tmp/x";
    DecisionRecord r;
    r.event = &ev;
    r.rule = "no-mkdir";
    r.action = action;
    r.result = action == "deny" ? "EPERM" : "continue";
    r.latency_ns = latency_ns;
    broadcaster_.OnDecision(r);
  }

  std::string dir_, path_;
  std::mutex mu_;
  std::vector<ContainerSnapshot> containers_;
  PolicySummary policy_{"/etc/seccomp-agent/policy.yaml", 3};
  absl::Status reload_error_;
  int reloads_ = 0;
  HandoffCounters handoff_;
  Broadcaster broadcaster_;
  std::atomic<bool> healthy_{true};  // what Options::healthy says
  std::unique_ptr<AdminServer> server_;
};

}  // namespace seccomp_agent::admin::testing

#endif  // SECCOMP_AGENT_ADMIN_TEST_FIXTURE_H_
