// Fairness under a flood (issue 7): one container floods the agent with
// trapped getppid calls from four threads while a quiet container times its
// own trapped calls from the task side (CLOCK_MONOTONIC around the syscall,
// so scheduling, the agent's queueing and the reply all count).
//
// The quiet container's rounds of 100 calls alternate unloaded / loaded
// (flood on), on one agent and one pair of containers. What is asserted is
// not a timing: with --container_rate=1000 (and the flood's annotation
// seccomp-agent.io/rate=500, which lowers its own limit) every quiet call
// is answered, every round completes, the flood is served (not starved to
// zero) and throttled (logged and counted on /metrics), the quiet container
// is never throttled, and no call fails (delay mode). Without a limit the
// same rounds run and nothing is throttled. The latencies (the p99 of the
// loaded rounds over the p99 of the unloaded ones, interleaved so the shared
// machine's noise hits both alike) and the flood's rate are printed as
// measurements ("fairness measurement: ..."), never asserted: see the
// README's "Fairness and rate limits" for what they were.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/container.h"
#include "integration/harness/subprocess.h"
#include "integration/harness/test_util.h"

namespace seccomp_agent::integration {
namespace {

namespace fs = std::filesystem;

constexpr char kPolicy[] = R"(
version: 1
default_action: {allow: {}}
rules:
  - name: spoof-ppid
    match: {syscalls: [getppid]}
    action: {return: {value: 4242}}
)";

constexpr double kRate = 1000;      // --container_rate: every container
constexpr double kBurst = 100;      // --container_burst
constexpr double kFloodRate = 500;  // the flood's own, lower limit (annotation)
constexpr int kFloodThreads = 4;
constexpr int kCalls = 100;   // per quiet round
constexpr int kGapUs = 1500;  // between quiet calls: ~600/s, under kRate
constexpr int kPairs = 10;    // unloaded/loaded round pairs (6 without a limit)

// Under ASan/TSan the agent is several times slower per notification, so the
// same flood costs it more: the latency bound is logged there, not asserted
// (the rate, no failed call, the log line and the metric still are).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

std::string ProbePath() { return Runfile("agent/testing/fairness_probe_static"); }

// The p-th percentile (nearest rank).
int64_t Percentile(std::vector<int64_t> v, int p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::max<size_t>(1, (v.size() * p + 99) / 100) - 1];
}

// Total calls of the flood so far (its probe rewrites /tmp/count).
uint64_t FloodCalls(const std::string& tmp, uint64_t* bad = nullptr) {
  unsigned long long calls = 0, b = 0;
  std::ifstream in(tmp + "/count");
  in >> calls >> b;
  if (bad != nullptr) *bad = b;
  return calls;
}

// GET /metrics over plain HTTP/1.0; "" on failure.
std::string Scrape(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) out.append(buf, n);
    }
  }
  close(fd);
  return out;
}

struct Rounds {
  std::vector<int64_t> unloaded, loaded;          // every quiet call's latency, ns
  std::vector<int64_t> unloaded_p99, loaded_p99;  // per round
  double flood_calls = 0, flood_secs = 0;         // the flood during loaded rounds
  int bad = 0;                                    // quiet calls not answered 4242
  int64_t p99_unloaded() const { return Percentile(unloaded, 99); }
  int64_t p99_loaded() const { return Percentile(loaded, 99); }
  double flood_rate() const { return flood_secs > 0 ? flood_calls / flood_secs : 0; }
  std::string Describe() const {
    auto us = [](const std::vector<int64_t>& v) {
      std::vector<std::string> s;
      for (int64_t x : v) s.push_back(absl::StrCat(x / 1000));
      return absl::StrCat("[", absl::StrJoin(s, " "), "]");
    };
    return absl::StrCat("p99 unloaded ", p99_unloaded() / 1000, " us, loaded ", p99_loaded() / 1000,
                        " us (", unloaded.size(), " calls each; p50 ",
                        Percentile(unloaded, 50) / 1000, " / ", Percentile(loaded, 50) / 1000,
                        " us); per-round p99 us unloaded ", us(unloaded_p99), " loaded ",
                        us(loaded_p99), "; flood ", static_cast<int64_t>(flood_rate()),
                        " calls/s while on");
  }
};

class FairnessE2ETest : public ::testing::TestWithParam<Runtime> {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root (containers)";
    ASSERT_EQ(access(ProbePath().c_str(), X_OK), 0) << ProbePath();
  }

  // Starts the agent (with `flags`), the flood container (idle until
  // /tmp/run) and the quiet container (waiting for /tmp/go.0).
  void StartAll(const std::vector<std::string>& flags,
                const std::map<std::string, std::string>& flood_annotations = {}) {
    AgentOptions o;
    o.policy_yaml = kPolicy;
    o.extra_flags = flags;
    auto a = Agent::Start(o);
    ASSERT_TRUE(a.ok()) << a.status();
    agent_ = *std::move(a);
    flood_id_ = NewId("flood");
    quiet_id_ = NewId("quiet");
    flood_ = MakeContainer(flood_id_,
                           {"/bin/fairness_probe", "flood", std::to_string(kFloodThreads), "/tmp"},
                           flood_annotations);
    quiet_ = MakeContainer(quiet_id_, {"/bin/fairness_probe", "measure", "/tmp",
                                       std::to_string(kCalls), std::to_string(kGapUs)});
    ASSERT_TRUE(flood_ && quiet_);
    flood_tmp_ = flood_->rootfs() + "/tmp";
    quiet_tmp_ = quiet_->rootfs() + "/tmp";
    auto fr = flood_->Start();
    ASSERT_TRUE(fr.ok()) << fr.status();
    flood_run_ = *std::move(fr);
    auto qr = quiet_->Start();
    ASSERT_TRUE(qr.ok()) << qr.status();
    quiet_run_ = *std::move(qr);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!fs::exists(flood_tmp_ + "/count") && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_TRUE(fs::exists(flood_tmp_ + "/count"))
        << "flood probe did not start: " << flood_run_->StderrText() << "\nagent:\n"
        << agent_->Stderr();
    ASSERT_TRUE(
        agent_->WaitForLog(absl::StrCat("container ", quiet_id_, " registered"), absl::Seconds(20)))
        << quiet_run_->StderrText() << "\nagent:\n"
        << agent_->Stderr();
  }

  // Runs `pairs` unloaded/loaded pairs of quiet rounds.
  Rounds RunRounds(int pairs) {
    Rounds out;
    for (int i = 0; i < 2 * pairs; ++i) {
      const bool loaded = i % 2 == 1;
      const int r = round_++;
      uint64_t c0 = 0;
      absl::Time t0;
      if (loaded) {
        std::ofstream(flood_tmp_ + "/run") << "1\n";
        absl::SleepFor(absl::Milliseconds(30));  // the flood is on, its burst spent
        c0 = FloodCalls(flood_tmp_);
        t0 = absl::Now();
      }
      std::ofstream(absl::StrCat(quiet_tmp_, "/go.", r)) << "1\n";
      auto line = quiet_run_->WaitForStdout(absl::StrCat("round ", r, " "), absl::Seconds(30));
      if (!line) {
        ADD_FAILURE() << "quiet round " << r << " did not finish: " << quiet_run_->StdoutText()
                      << quiet_run_->StderrText();
        return out;
      }
      if (loaded) {
        const uint64_t c1 = FloodCalls(flood_tmp_);
        out.flood_secs += absl::ToDoubleSeconds(absl::Now() - t0);
        out.flood_calls += static_cast<double>(c1 - c0);
        fs::remove(flood_tmp_ + "/run");
        absl::SleepFor(absl::Milliseconds(30));  // the flood is idle again
      }
      int round = 0, calls = 0, bad = 0;
      long long p50 = 0, p90 = 0, p99 = 0, max = 0;
      EXPECT_EQ(
          sscanf(line->text.c_str(), "round %d calls=%d bad=%d p50=%lld p90=%lld p99=%lld max=%lld",
                 &round, &calls, &bad, &p50, &p90, &p99, &max),
          7)
          << line->text;
      out.bad += bad;
      (loaded ? out.loaded_p99 : out.unloaded_p99).push_back(p99);
      const size_t at = line->text.find("lat=");
      EXPECT_NE(at, std::string::npos) << line->text;
      std::vector<int64_t>& into = loaded ? out.loaded : out.unloaded;
      for (absl::string_view v : absl::StrSplit(line->text.substr(at + 4), ',')) {
        int64_t ns = 0;
        EXPECT_TRUE(absl::SimpleAtoi(v, &ns)) << v;
        into.push_back(ns);
      }
    }
    return out;
  }

  void StopAll() {
    std::ofstream(flood_tmp_ + "/stop") << "1\n";
    std::ofstream(quiet_tmp_ + "/stop") << "1\n";
    ExitInfo fe = flood_run_->Wait(absl::Seconds(30));
    ExitInfo qe = quiet_run_->Wait(absl::Seconds(30));
    EXPECT_EQ(fe.exit_code, 0) << fe.ToString() << flood_run_->StderrText();
    EXPECT_EQ(qe.exit_code, 0) << qe.ToString() << quiet_run_->StderrText();
  }

  std::string NewId(const std::string& name) {
    return UniqueContainerId(absl::StrCat("e2e-", name, "-", RuntimeName(GetParam())));
  }

  std::unique_ptr<Container> MakeContainer(const std::string& id,
                                           const std::vector<std::string>& args,
                                           const std::map<std::string, std::string>& ann = {}) {
    ContainerConfig cfg;
    cfg.args = args;
    cfg.annotations = ann;
    cfg.seccomp = SeccompConfig{agent_->socket_path(), std::nullopt, {"getppid"}};
    auto c = Container::Create(GetParam(), id, cfg);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return nullptr;
    std::error_code ec;
    const std::string dst = (*c)->rootfs() + "/bin/fairness_probe";
    fs::copy_file(ProbePath(), dst, fs::copy_options::overwrite_existing, ec);
    EXPECT_FALSE(ec) << ec.message();
    fs::permissions(dst,
                    fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec |
                        fs::perms::group_read | fs::perms::others_read,
                    ec);
    return *std::move(c);
  }

  // Not timings: every quiet round completed with every call answered by
  // the agent, and the flood made progress while on.
  void ExpectEveryoneServed(const Rounds& r, int pairs) {
    EXPECT_EQ(r.loaded.size(), static_cast<size_t>(pairs * kCalls)) << r.Describe();
    EXPECT_EQ(r.unloaded.size(), static_cast<size_t>(pairs * kCalls)) << r.Describe();
    EXPECT_EQ(r.bad, 0) << "quiet calls not answered by the agent";
    EXPECT_GT(r.flood_calls, 0) << "the flood was starved to zero";
  }

  // The measurements: printed and recorded, never asserted.
  void Report(const std::string& setting, const Rounds& r) {
    const double ratio =
        r.p99_unloaded() > 0 ? static_cast<double>(r.p99_loaded()) / r.p99_unloaded() : 0;
    std::cerr << "fairness measurement: " << RuntimeName(GetParam()) << " " << setting
              << ": loaded/unloaded p99 ratio " << absl::StrFormat("%.2f", ratio) << "; "
              << r.Describe() << (kSanitized ? " (sanitizer build)" : "") << "\n";
    RecordProperty("p99_ratio_loaded_over_unloaded", absl::StrFormat("%.3f", ratio));
    RecordProperty("unloaded_p99_ns", std::to_string(r.p99_unloaded()));
    RecordProperty("loaded_p99_ns", std::to_string(r.p99_loaded()));
    RecordProperty("flood_calls_per_s", std::to_string(static_cast<int64_t>(r.flood_rate())));
  }

  // seccomp_agent_container_rate_limited_total of `id` in a scrape (0 if absent).
  static uint64_t RateLimitedTotal(const std::string& metrics, const std::string& id) {
    const std::string key =
        absl::StrCat("seccomp_agent_container_rate_limited_total{container_id=\"", id, "\"");
    const size_t at = metrics.find(key);
    const size_t sp = at == std::string::npos ? at : metrics.find("} ", at);
    uint64_t n = 0;
    if (sp != std::string::npos) {
      (void)absl::SimpleAtoi(metrics.substr(sp + 2, metrics.find('\n', sp) - sp - 2), &n);
    }
    return n;
  }

  std::unique_ptr<Agent> agent_;
  std::string flood_id_, quiet_id_, flood_tmp_, quiet_tmp_;
  std::unique_ptr<Container> flood_, quiet_;
  std::unique_ptr<Subprocess> flood_run_, quiet_run_;
  int round_ = 0;
};

TEST_P(FairnessE2ETest, RateLimitServesEveryContainerAndThrottlesOnlyTheFlood) {
  const int port = 20000 + getpid() % 20000;
  ASSERT_NO_FATAL_FAILURE(StartAll(
      {absl::StrCat("--container_rate=", kRate), absl::StrCat("--container_burst=", kBurst),
       "--rate_limit_action=delay", absl::StrCat("--metrics_address=127.0.0.1:", port)},
      {{"seccomp-agent.io/rate", absl::StrCat(kFloodRate)}}));
  Rounds r = RunRounds(kPairs);
  ExpectEveryoneServed(r, kPairs);
  Report(absl::StrCat("--container_rate=", kRate, ", the flood's annotation ", kFloodRate, "/s"),
         r);
  // Throttled: logged and counted for the flood, never for the quiet one.
  EXPECT_TRUE(agent_->WaitForLog(absl::StrCat("container ", flood_id_, " hit its rate limit"),
                                 absl::Seconds(30)))
      << agent_->Stderr();
  EXPECT_EQ(agent_->CountLog(absl::StrCat("container ", quiet_id_, " hit its rate limit")), 0)
      << "the quiet container itself was throttled";
  EXPECT_GT(RateLimitedTotal(Scrape(port), flood_id_), 0u);
  StopAll();
  uint64_t flood_bad = 0;
  FloodCalls(flood_tmp_, &flood_bad);
  EXPECT_EQ(flood_bad, 0u) << "delay mode failed a flood call";
  EXPECT_NE(flood_run_->StdoutText().find("bad=0"), std::string::npos) << flood_run_->StdoutText();
}

// The same rounds with no limit: every container is served and nothing is
// throttled (round-robin fairness alone); the latencies are printed.
TEST_P(FairnessE2ETest, WithoutALimitEveryoneIsServedAndNothingThrottled) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  Rounds r = RunRounds(6);
  ExpectEveryoneServed(r, 6);
  Report("without a limit", r);
  StopAll();
  EXPECT_EQ(agent_->CountLog("hit its rate limit"), 0) << agent_->Stderr();
}

INSTANTIATE_TEST_SUITE_P(Runtimes, FairnessE2ETest,
                         ::testing::Values(Runtime::kRunc, Runtime::kCrun),
                         [](const auto& info) { return std::string(RuntimeName(info.param)); });

}  // namespace
}  // namespace seccomp_agent::integration
