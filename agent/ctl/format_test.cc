#include "agent/ctl/format.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::ctl {
namespace {

TEST(FormatTest, TableAlignsColumnsWithoutTrailingBlanks) {
  EXPECT_EQ(RenderTable({{"A", "BB", "C"}, {"xxx", "y", "z"}}),
            "A    BB  C\n"
            "xxx  y   z\n");
}

TEST(FormatTest, Age) {
  EXPECT_EQ(FormatAge(0), "0s");
  EXPECT_EQ(FormatAge(-5), "0s");
  EXPECT_EQ(FormatAge(59'000'000'000), "59s");
  EXPECT_EQ(FormatAge(61'000'000'000), "1m");
  EXPECT_EQ(FormatAge(int64_t{7200} * 1'000'000'000), "2h");
  EXPECT_EQ(FormatAge(int64_t{3} * 86400 * 1'000'000'000), "3d");
}

v1::ListContainersResponse Sample() {
  v1::ListContainersResponse r;
  r.set_now_unix_nanos(int64_t{1000} * 1'000'000'000);
  v1::ContainerEntry* c = r.add_containers();
  c->set_id("0123456789abcdef0123");
  c->set_init_pid(4242);
  c->set_runtime("runc");
  c->set_pod_namespace("prod");
  c->set_pod_name("web-0");
  c->set_container_name("nginx");
  c->set_listener_metadata("profile=web");
  c->set_policy("web@3");
  c->set_registered_unix_nanos(int64_t{880} * 1'000'000'000);
  c->mutable_counters()->set_notifications(10);
  c->mutable_counters()->set_allowed(6);
  c->mutable_counters()->set_denied(3);
  c->mutable_counters()->set_returned(1);
  c->mutable_counters()->set_rate_limited(7);
  c->mutable_counters()->set_rate_limit(100);
  (*c->mutable_annotations())["io.kubernetes.pod.name"] = "web-0";
  v1::ContainerEntry* d = r.add_containers();
  d->set_id("plain");
  d->set_init_pid(77);
  d->set_runtime("crun");
  d->set_registered_unix_nanos(int64_t{995} * 1'000'000'000);
  d->mutable_counters();  // the server always fills it
  return r;
}

TEST(FormatTest, ContainersTable) {
  EXPECT_EQ(FormatContainers(Sample(), /*wide=*/false),
            "CONTAINER     PID   RUNTIME  NAMESPACE  POD    NAME   METADATA     POLICY  AGE  "
            "NOTIFS  ALLOW  DENY  RETURN  SUBST  GONE  ERR  LIMITED\n"
            "0123456789ab  4242  runc     prod       web-0  nginx  profile=web  web@3   2m   "
            "10      6      3     1       0      0     0    7 (100/s)\n"
            "plain         77    crun     -          -      -      -            -       5s   "
            "0       0      0     0       0      0     0    -\n");
  EXPECT_NE(FormatContainers(Sample(), /*wide=*/true).find("0123456789abcdef0123"),
            std::string::npos);
}

TEST(FormatTest, JsonIsOneLineWithEveryField) {
  std::string s = ToJson(Sample());
  EXPECT_EQ(s.find('\n'), std::string::npos);
  auto j = nlohmann::json::parse(s);
  ASSERT_EQ(j["containers"].size(), 2u);
  EXPECT_EQ(j["containers"][0]["id"], "0123456789abcdef0123");
  EXPECT_EQ(j["containers"][0]["pod_namespace"], "prod");
  EXPECT_EQ(j["containers"][0]["listener_metadata"], "profile=web");
  EXPECT_EQ(j["containers"][0]["annotations"]["io.kubernetes.pod.name"], "web-0");
  // proto3 JSON: 64-bit integers are strings; zero fields are present.
  EXPECT_EQ(j["containers"][0]["counters"]["notifications"], "10");
  EXPECT_EQ(j["containers"][1]["counters"]["denied"], "0");
  EXPECT_EQ(j["containers"][1]["pod_name"], "");
  EXPECT_EQ(j["now_unix_nanos"], "1000000000000");
}

TEST(FormatTest, StatsListsNonZeroRejectReasons) {
  v1::GetStatsResponse r;
  r.set_uptime_seconds(125);
  r.set_active_containers(2);
  r.mutable_policy()->set_source("/etc/p.yaml");
  r.mutable_policy()->set_rules(3);
  r.mutable_totals()->set_notifications(12);
  r.mutable_totals()->set_rate_limited(4);
  r.mutable_totals()->set_throttled_seconds(1.5);
  (*r.mutable_handoff()->mutable_rejected())["peer_uid"] = 2;
  (*r.mutable_handoff()->mutable_rejected())["not_listener"] = 0;
  std::string s = FormatStats(r);
  EXPECT_NE(s.find("uptime:                      2m\n"), std::string::npos) << s;
  EXPECT_NE(s.find("policy:                      /etc/p.yaml (3 rules)\n"), std::string::npos) << s;
  EXPECT_NE(s.find("handoff rejected:            2\n"), std::string::npos) << s;
  EXPECT_NE(s.find("  peer_uid:                  2\n"), std::string::npos) << s;
  EXPECT_EQ(s.find("not_listener"), std::string::npos) << s;
  EXPECT_NE(s.find("rate limited:                4\n"), std::string::npos) << s;
  EXPECT_NE(s.find("  throttled:                 1.500 s\n"), std::string::npos) << s;
}

TEST(FormatTest, WatchLines) {
  v1::WatchDecisionsResponse r;
  v1::DecisionEvent* d = r.mutable_decision();
  d->set_time_unix_nanos(int64_t{3723} * 1'000'000'000 + 5000);  // 01:02:03.000005
  d->set_container_id("0123456789abcdef");
  d->set_pod_namespace("prod");
  d->set_pod_name("web-0");
  d->set_container_name("nginx");
  d->set_pid(99);
  d->set_syscall("openat");
  d->set_action("redirect_open");
  d->set_backend("kernel");
  d->set_result("fd 5");
  d->set_rule("tmp");
  d->set_latency_nanos(12345);
  d->set_path("/etc/passwd");
  std::string line = FormatWatchEvent(r, false);
  EXPECT_EQ(line,
            "01:02:03.000005  0123456789ab  prod/web-0/nginx                99       openat        "
            "redirect_open(kernel)  fd 5        tmp                  12.3us  /etc/passwd\n");
  v1::WatchDecisionsResponse dr;
  dr.mutable_dropped()->set_count(7);
  EXPECT_EQ(FormatWatchEvent(dr, false), "!! 7 events dropped (this watcher read too slowly)\n");
}

}  // namespace
}  // namespace seccomp_agent::ctl
