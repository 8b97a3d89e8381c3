// The metrics endpoint over real HTTP: what is served parses as exposition
// format 0.0.4 and carries the values fed in.
#include <linux/audit.h>
#include <sys/syscall.h>

#include <string>

#include "agent/handoff/server.h"
#include "agent/metrics/decision_metrics.h"
#include "agent/metrics/exposition.h"
#include "agent/metrics/exposition_parser.h"
#include "agent/metrics/handoff_metrics.h"
#include "agent/metrics/http_server.h"
#include "agent/metrics/rate_limit_metrics.h"
#include "agent/metrics/registry.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace seccomp_agent::metrics {
namespace {

DecisionRecord Rec(const SyscallEvent* ev, const char* action, int64_t latency_ns,
                   const char* backend = "") {
  DecisionRecord r;
  r.event = ev;
  r.action = action;
  r.result = "x";
  r.backend = backend;
  r.latency_ns = latency_ns;
  return r;
}

SyscallEvent Ev(const ContainerInfo* c, int nr) {
  SyscallEvent ev;
  ev.container = c;
  ev.arch = AUDIT_ARCH_X86_64;
  ev.nr = nr;
  return ev;
}

TEST(ExpositionTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  std::string labels;
  AppendLabel(&labels, "k", "v\"");
  AppendLabel(&labels, "j", "w");
  EXPECT_EQ(labels, "k=\"v\\\"\",j=\"w\"");
  std::string out;
  WriteHeader(&out, "m", "line1\nline2 \\", "counter");
  EXPECT_EQ(out, "# HELP m line1\\nline2 \\\\\n# TYPE m counter\n");
  EXPECT_EQ(FormatDouble(2.5e-6), "2.5e-06");
  EXPECT_EQ(FormatDouble(0.001), "0.001");
  EXPECT_EQ(FormatDouble(1.0 / 0.0), "+Inf");
}

TEST(ExpositionParserTest, RejectsWhatPrometheusWouldReject) {
  EXPECT_FALSE(ParseExposition("m 1\n").ok());  // no TYPE
  EXPECT_FALSE(ParseExposition("# HELP m h\n# TYPE m counter\nm{a=\"x} 1\n").ok());
  EXPECT_FALSE(ParseExposition("# HELP m h\n# TYPE m counter\nm 1\nm 2\n").ok());  // dup
  EXPECT_FALSE(ParseExposition("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                               "h_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n")
                   .ok());  // not cumulative
  EXPECT_TRUE(ParseExposition("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                              "h_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n")
                  .ok());
}

class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.AddCollector([this](std::string* out) { dm_.Collect(out); });
    registry_.AddCollector(
        [this](std::string* out) { WriteHandoffMetrics(handoff_, /*pending=*/3, out); });
    auto srv = HttpServer::Start("127.0.0.1:0", &registry_, [this] { return healthy_.load(); });
    ASSERT_TRUE(srv.ok()) << srv.status();
    server_ = std::move(*srv);
  }

  Exposition Scrape() {
    httplib::Client cli("127.0.0.1", server_->port());
    cli.set_connection_timeout(5);
    cli.set_read_timeout(5);
    auto res = cli.Get("/metrics");
    EXPECT_TRUE(res);
    if (!res) return {};
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Type"), kContentType);
    auto e = ParseExposition(res->body);
    EXPECT_TRUE(e.ok()) << e.status() << "\n" << res->body;
    body_ = res->body;
    return e.ok() ? *e : Exposition{};
  }

  DecisionMetrics dm_;
  HandoffCounters handoff_;
  Registry registry_;
  std::atomic<bool> healthy_{true};
  std::unique_ptr<HttpServer> server_;
  std::string body_;
};

TEST_F(MetricsHttpTest, ServesParsableCountsByContainerSyscallAction) {
  ContainerInfo a;
  a.id = "ctr-a";
  a.pod_namespace = "default";
  a.pod_name = "web-0";
  a.container_name = "nginx";
  ContainerInfo b;
  b.id = "ctr-\"b\"\n";  // hostile label value: must be escaped
  dm_.OnContainerAdded(a);
  dm_.OnContainerAdded(b);
  SyscallEvent mkdir_a = Ev(&a, SYS_mkdir), open_a = Ev(&a, SYS_openat),
               mkdir_b = Ev(&b, SYS_mkdir);
  for (int i = 0; i < 5; ++i) dm_.OnDecision(Rec(&mkdir_a, "deny", 3000));
  for (int i = 0; i < 2; ++i) dm_.OnDecision(Rec(&open_a, "redirect_open", 40000, "emulation"));
  dm_.OnDecision(Rec(&mkdir_b, "allow", 500));
  handoff_.connections = 7;
  handoff_.handoffs = 2;
  handoff_.rejected[static_cast<int>(RejectReason::kPeerUid)] = 4;

  Exposition e = Scrape();
  auto v = [&](const std::string& n, std::map<std::string, std::string> l = {}) {
    auto r = e.Value(n, l);
    EXPECT_TRUE(r.ok()) << r.status() << "\n" << body_;
    return r.ok() ? *r : -1;
  };
  EXPECT_EQ(v("seccomp_agent_notifications_total", {{"container_id", "ctr-a"},
                                                    {"namespace", "default"},
                                                    {"pod", "web-0"},
                                                    {"container", "nginx"},
                                                    {"syscall", "mkdir"},
                                                    {"action", "deny"}}),
            5);
  EXPECT_EQ(v("seccomp_agent_notifications_total", {{"container_id", "ctr-a"},
                                                    {"namespace", "default"},
                                                    {"pod", "web-0"},
                                                    {"container", "nginx"},
                                                    {"syscall", "openat"},
                                                    {"action", "redirect_open"}}),
            2);
  EXPECT_EQ(v("seccomp_agent_notifications_total", {{"container_id", "ctr-\"b\"\n"},
                                                    {"namespace", ""},
                                                    {"pod", ""},
                                                    {"container", ""},
                                                    {"syscall", "mkdir"},
                                                    {"action", "allow"}}),
            1);
  EXPECT_EQ(e.families.at("seccomp_agent_notifications_total").type, "counter");
  // Histogram: 500 ns -> le 1e-06; 3000 ns -> le 5e-06; 40000 ns -> le 5e-05.
  const auto& h = e.families.at("seccomp_agent_decision_latency_seconds");
  EXPECT_EQ(h.type, "histogram");
  EXPECT_EQ(v("seccomp_agent_decision_latency_seconds_bucket", {{"le", "1e-06"}}), 1);
  EXPECT_EQ(v("seccomp_agent_decision_latency_seconds_bucket", {{"le", "2.5e-06"}}), 1);
  EXPECT_EQ(v("seccomp_agent_decision_latency_seconds_bucket", {{"le", "5e-06"}}), 6);
  EXPECT_EQ(v("seccomp_agent_decision_latency_seconds_bucket", {{"le", "5e-05"}}), 8);
  EXPECT_EQ(v("seccomp_agent_decision_latency_seconds_bucket", {{"le", "+Inf"}}), 8);
  EXPECT_EQ(v("seccomp_agent_decision_latency_seconds_count"), 8);
  EXPECT_NEAR(v("seccomp_agent_decision_latency_seconds_sum"), (5 * 3000 + 2 * 40000 + 500) / 1e9,
              1e-12);
  EXPECT_EQ(v("seccomp_agent_injector_decisions_total", {{"backend", "emulation"}}), 2);
  EXPECT_EQ(v("seccomp_agent_active_containers"), 2);
  EXPECT_EQ(e.families.at("seccomp_agent_active_containers").type, "gauge");
  EXPECT_EQ(v("seccomp_agent_notification_series"), 3);
  EXPECT_EQ(v("seccomp_agent_handoff_connections_total"), 7);
  EXPECT_EQ(v("seccomp_agent_handoffs_total"), 2);
  EXPECT_EQ(v("seccomp_agent_handoff_rejections_total", {{"reason", "peer_uid"}}), 4);
  EXPECT_EQ(v("seccomp_agent_handoff_rejections_total", {{"reason", "not_listener"}}), 0);
  EXPECT_EQ(v("seccomp_agent_handoff_pending_connections"), 3);

  dm_.OnContainerRemoved(b, "test");
  e = Scrape();
  EXPECT_EQ(v("seccomp_agent_active_containers"), 1);
  EXPECT_EQ(v("seccomp_agent_containers_removed_total"), 1);
  // Still within the grace period: b's series are kept.
  EXPECT_EQ(v("seccomp_agent_notification_series"), 3);
}

TEST_F(MetricsHttpTest, ExternalCollectorAndHealthz) {
  registry_.AddCollector([](std::string* out) {
    WriteHeader(out, "seccomp_agent_plugin_errors_total", "Plugin errors.", "counter");
    WriteSample(out, "seccomp_agent_plugin_errors_total", "plugin=\"p\",kind=\"timeout\"", 9);
  });
  Exposition e = Scrape();
  auto r = e.Value("seccomp_agent_plugin_errors_total", {{"plugin", "p"}, {"kind", "timeout"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 9);

  httplib::Client cli("127.0.0.1", server_->port());
  cli.set_read_timeout(5);
  auto res = cli.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  healthy_ = false;
  res = cli.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  res = cli.Get("/nope");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST(RateLimitMetricsTest, PerContainerCountersOnlyForLimitedContainers) {
  ContainerSnapshot limited{};
  limited.info.id = "flood\"1";
  limited.rate = 250;
  limited.burst = 50;
  limited.rate_limited = 17;
  limited.throttled_ns = 1'500'000'000;
  ContainerSnapshot free{};
  free.info.id = "quiet";
  std::string out;
  WriteRateLimitMetrics({limited, free}, 42, &out);
  auto e = ParseExposition(out);
  ASSERT_TRUE(e.ok()) << e.status() << "\n" << out;
  EXPECT_EQ(*e->Value("seccomp_agent_rate_limited_total"), 42);
  const std::map<std::string, std::string> l = {
      {"container_id", "flood\"1"}, {"namespace", ""}, {"pod", ""}, {"container", ""}};
  EXPECT_EQ(*e->Value("seccomp_agent_container_rate_limited_total", l), 17);
  EXPECT_EQ(*e->Value("seccomp_agent_container_rate_limit", l), 250);
  EXPECT_DOUBLE_EQ(*e->Value("seccomp_agent_container_throttled_seconds_total", l), 1.5);
  EXPECT_EQ(out.find("quiet"), std::string::npos) << out;
}

TEST(EngineTotalsMetricsTest, OneCounterPerEffect) {
  EngineTotals t;
  t.allowed = 5;
  t.denied = 3;
  t.returned = 2;
  t.substituted = 1;
  std::string out;
  WriteEngineTotals(t, &out);
  auto e = ParseExposition(out);
  ASSERT_TRUE(e.ok()) << e.status() << "\n" << out;
  EXPECT_EQ(e->families.at("seccomp_agent_decisions_total").type, "counter");
  EXPECT_EQ(*e->Value("seccomp_agent_decisions_total", {{"effect", "allowed"}}), 5);
  EXPECT_EQ(*e->Value("seccomp_agent_decisions_total", {{"effect", "denied"}}), 3);
  EXPECT_EQ(*e->Value("seccomp_agent_decisions_total", {{"effect", "returned"}}), 2);
  EXPECT_EQ(*e->Value("seccomp_agent_decisions_total", {{"effect", "substituted"}}), 1);
  EXPECT_EQ(*e->Value("seccomp_agent_decisions_total", {{"effect", "task_gone"}}), 0);
}

TEST(HttpServerTest, ParsesAddresses) {
  std::string h;
  int p;
  ASSERT_TRUE(ParseHostPort("127.0.0.1:9464", &h, &p).ok());
  EXPECT_EQ(h, "127.0.0.1");
  EXPECT_EQ(p, 9464);
  ASSERT_TRUE(ParseHostPort("[::1]:80", &h, &p).ok());
  EXPECT_EQ(h, "::1");
  ASSERT_TRUE(ParseHostPort(":9464", &h, &p).ok());
  EXPECT_EQ(h, "0.0.0.0");
  EXPECT_FALSE(ParseHostPort("9464", &h, &p).ok());
  EXPECT_FALSE(ParseHostPort("h:99999", &h, &p).ok());
  Registry r;
  EXPECT_FALSE(HttpServer::Start("127.0.0.1:notaport", &r, nullptr).ok());
}

}  // namespace
}  // namespace seccomp_agent::metrics
