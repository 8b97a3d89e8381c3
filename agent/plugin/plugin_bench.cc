// plugin_bench: round-trip latency of one plugin decision over a unix socket
// (PluginDispatcher -> gRPC -> the redirect_by_label example service, in
// this process), unary and stream, and of a decision-cache hit. Not a test:
// it prints numbers.
//
//   bazel run -c opt //agent/plugin:plugin_bench -- --n=20000
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "agent/plugin/dispatcher.h"
#include "agent/plugin/examples/redirect_by_label/redirect_by_label.h"
#include "agent/plugin/testing/test_util.h"

ABSL_FLAG(int, n, 10000, "decisions per scenario");
ABSL_FLAG(int, warmup, 500, "decisions before measuring");
ABSL_FLAG(int, concurrency, 32, "decisions in flight for the throughput runs");

namespace seccomp_agent::plugin {
namespace {

using Clock = std::chrono::steady_clock;

struct Summary {
  double p50, p90, p99, p999, max;
};

Summary Summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))];
  };
  return {at(0.50), at(0.90), at(0.99), at(0.999), us.back()};
}

void Print(const char* name, const Summary& s) {
  std::printf("%-28s p50 %8.1f us  p90 %8.1f us  p99 %8.1f us  p99.9 %8.1f us  max %8.1f us\n",
              name, s.p50, s.p90, s.p99, s.p999, s.max);
}

// Sequential round trips: Decide() until `done`, one at a time.
Summary Sequential(PluginDispatcher& d, const std::vector<SyscallEvent>& evs, int n, int warmup,
                   bool expect_cache) {
  std::vector<double> us;
  us.reserve(n);
  for (int i = 0; i < warmup + n; ++i) {
    const SyscallEvent& ev = evs[i % evs.size()];
    std::promise<PluginResult> p;
    auto f = p.get_future();
    const auto t0 = Clock::now();
    d.Decide("bench", ev, [&p](PluginResult r) { p.set_value(std::move(r)); });
    PluginResult r = f.get();
    const auto t1 = Clock::now();
    if (r.kind != PluginResult::Kind::kAction || r.from_cache != expect_cache) {
      std::fprintf(stderr, "unexpected result at %d: kind %d cache %d: %s\n", i,
                   static_cast<int>(r.kind), r.from_cache, r.error.ToString().c_str());
      std::exit(1);
    }
    if (i >= warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  return Summarize(std::move(us));
}

// Throughput with `conc` decisions in flight.
double Throughput(PluginDispatcher& d, const SyscallEvent& ev, int n, int conc) {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, finished = 0, errors = 0;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return in_flight < conc; });
      ++in_flight;
    }
    d.Decide("bench", ev, [&](PluginResult r) {
      std::lock_guard<std::mutex> l(mu);
      --in_flight;
      ++finished;
      if (r.kind != PluginResult::Kind::kAction) ++errors;
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return finished == n; });
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (errors > 0) std::fprintf(stderr, "%d errors\n", errors);
  return n / s;
}

int Main() {
  const int n = absl::GetFlag(FLAGS_n), warmup = absl::GetFlag(FLAGS_warmup);
  const std::string sock = testing::SocketPath("bench");
  examples::RedirectByLabelConfig cfg;
  cfg.label_key = "example.com/redirect";
  cfg.exact["/etc/app.conf"] = "/srv/redirect/app.conf";
  cfg.cache_ttl_ms = 0;  // every call reaches the plugin
  examples::RedirectByLabelService no_cache(cfg);
  cfg.cache_ttl_ms = 60000;
  examples::RedirectByLabelService with_cache(cfg);

  grpc::EnableDefaultHealthCheckService(true);
  auto serve = [](grpc::Service* svc, const std::string& addr) {
    grpc::ServerBuilder b;
    b.AddListeningPort(addr, grpc::InsecureServerCredentials());
    b.RegisterService(svc);
    return b.BuildAndStart();
  };
  const std::string sock2 = testing::SocketPath("bench_cache");
  auto server = serve(&no_cache, "unix://" + sock);
  auto server2 = serve(&with_cache, "unix://" + sock2);

  ContainerInfo c = testing::Container("bench", {{"example.com/redirect", "1"}});
  std::vector<SyscallEvent> evs = {testing::OpenatEvent(&c, "/etc/app.conf"),
                                   testing::OpenatEvent(&c, "/etc/hosts")};
  std::printf(
      "plugin_bench: %d decisions per scenario, %ld CPUs online, openat with a 13-byte path\n", n,
      sysconf(_SC_NPROCESSORS_ONLN));
  for (bool stream : {false, true}) {
    v1::PluginConfig pc;
    pc.set_name("bench");
    pc.set_address("unix://" + sock);
    pc.set_timeout_ms(1000);
    pc.set_max_in_flight(1024);
    pc.set_stream(stream);
    DispatcherOptions o;
    o.redirect_roots = {"/srv/redirect"};
    auto d = PluginDispatcher::Create({pc}, o);
    if (!d.ok()) return 1;
    Print(stream ? "stream round trip" : "unary round trip",
          Sequential(**d, evs, n, warmup, false));
    const double tput = Throughput(**d, evs[0], n, absl::GetFlag(FLAGS_concurrency));
    std::printf("%-28s %.0f decisions/s with %d in flight\n",
                stream ? "stream throughput" : "unary throughput", tput,
                absl::GetFlag(FLAGS_concurrency));
  }
  {
    v1::PluginConfig pc;
    pc.set_name("bench");
    pc.set_address("unix://" + sock2);
    pc.set_timeout_ms(1000);
    DispatcherOptions o;
    o.redirect_roots = {"/srv/redirect"};
    auto d = PluginDispatcher::Create({pc}, o);
    if (!d.ok()) return 1;
    // Fill the cache (one miss per distinct event), then measure hits.
    for (const SyscallEvent& ev : evs) {
      std::promise<PluginResult> p;
      (*d)->Decide("bench", ev, [&p](PluginResult r) { p.set_value(std::move(r)); });
      p.get_future().get();
    }
    Print("cache hit", Sequential(**d, evs, n, warmup, true));
    // The engine's fast path (DecideCached: an unlabelled container's
    // cached allow), timed over many calls: its CPU cost alone.
    ContainerInfo plain = testing::Container("plain", {});
    const SyscallEvent pev = testing::OpenatEvent(&plain, "/etc/hosts");
    std::promise<PluginResult> p;
    (*d)->Decide("bench", pev, [&p](PluginResult r) { p.set_value(std::move(r)); });
    p.get_future().get();
    // As the engine calls it: the plugin found once, the expiry checked at
    // the time the notification was received (one clock read per run here).
    const int hits = 100 * n;
    PluginState* plugin = (*d)->Find("bench");
    SyscallEvent timed = pev;
    PlainDecision pd;
    const auto t0 = Clock::now();
    timed.received_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count();
    for (int i = 0; i < hits; ++i) {
      if (!(*d)->DecideCached(plugin, timed, &pd)) {
        std::fprintf(stderr, "DecideCached missed at %d\n", i);
        return 1;
      }
    }
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / hits;
    std::printf("%-28s %8.1f ns per call (%d calls)\n", "DecideCached hit", ns, hits);
  }
  server->Shutdown();
  server2->Shutdown();
  unlink(sock.c_str());
  unlink(sock2.c_str());
  return 0;
}

}  // namespace
}  // namespace seccomp_agent::plugin

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return seccomp_agent::plugin::Main();
}
