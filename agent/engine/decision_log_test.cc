// The decision log's bounds: a flood of 4000-byte paths cannot grow the file
// past max_bytes * (keep + 1), a container's lines beyond its byte rate are
// dropped and reported with their count (file and stdout), another
// container's lines are not, and a failing rotation drops instead of growing.
#include "agent/engine/decision_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent {
namespace {

constexpr size_t kLongPath = 4000;

class DecisionLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/decision-log-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/decisions.jsonl";
    a_.id = "flood";
    b_.id = "quiet";
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  // One decision of `c` whose path is `n` bytes long and ends in `tag`.
  void Write(DecisionLog* log, const ContainerInfo& c, size_t n, const std::string& tag) {
    SyscallEvent ev;
    ev.container = &c;
    ev.syscall = "openat";
    ev.path = "/" + std::string(n > tag.size() + 2 ? n - tag.size() - 2 : 0, 'a') + "/" + tag;
    DecisionRecord r;
    r.event = &ev;
    r.rule = "default";
    r.action = "allow";
    r.result = "continue";
    log->Write(r);
  }

  static off_t Size(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 ? st.st_size : -1;
  }

  static std::vector<nlohmann::json> Lines(const std::string& p) {
    std::ifstream in(p);
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  // Per container: decisions logged and drops reported in `lines`.
  struct Tally {
    uint64_t logged = 0, logged_bytes = 0, dropped = 0, dropped_bytes = 0;
  };
  static std::map<std::string, Tally> Count(const std::vector<nlohmann::json>& lines) {
    std::map<std::string, Tally> t;
    for (const auto& j : lines) {
      Tally& c = t[j["container"].get<std::string>()];
      if (j.contains("dropped")) {
        EXPECT_EQ(j["reason"], "rate-limit") << j;
        c.dropped += j["dropped"].get<uint64_t>();
        c.dropped_bytes += j["dropped_bytes"].get<uint64_t>();
      } else {
        c.logged++;
        c.logged_bytes += j.dump().size() + 1;
      }
    }
    return t;
  }

  std::string dir_, path_;
  ContainerInfo a_, b_;
};

TEST_F(DecisionLogTest, AFloodOfLongPathsCannotGrowTheFilePastTheCap) {
  DecisionLogOptions o;
  o.max_bytes = 256 << 10;
  o.keep = 2;
  o.rate_bytes = 0;  // rotation alone
  auto log = DecisionLog::Open(path_, o);
  ASSERT_TRUE(log.ok()) << log.status();
  const int kLines = 2000;  // ~8 MB of log without the cap
  for (int i = 0; i < kLines; ++i) Write(log->get(), a_, kLongPath, std::to_string(i));
  EXPECT_GE((*log)->rotations(), 10u);
  EXPECT_EQ((*log)->dropped_lines(), 0u);
  log->reset();
  for (const std::string& p : {path_, path_ + ".1", path_ + ".2"}) {
    ASSERT_GT(Size(p), 0) << p;
    EXPECT_LE(Size(p), static_cast<off_t>(o.max_bytes)) << p;
  }
  EXPECT_EQ(Size(path_ + ".3"), -1) << "more files than keep + 1";
  // Whole lines only, the newest in PATH, the rest in order in PATH.1.
  std::vector<nlohmann::json> live = Lines(path_), older = Lines(path_ + ".1");
  ASSERT_FALSE(live.empty());
  ASSERT_FALSE(older.empty());
  const std::string last = live.back()["args"]["path"];
  EXPECT_EQ(last.substr(last.rfind('/') + 1), std::to_string(kLines - 1));
  const std::string first_live = live.front()["args"]["path"];
  const std::string last_older = older.back()["args"]["path"];
  EXPECT_EQ(std::stoi(first_live.substr(first_live.rfind('/') + 1)),
            std::stoi(last_older.substr(last_older.rfind('/') + 1)) + 1);
}

TEST_F(DecisionLogTest, AFileAlreadyPastTheCapIsRotatedFirst) {
  {
    std::ofstream big(path_);
    big << std::string(300 << 10, 'x') << "\n";
  }
  DecisionLogOptions o;
  o.max_bytes = 256 << 10;
  o.keep = 0;  // truncate in place
  auto log = DecisionLog::Open(path_, o);
  ASSERT_TRUE(log.ok()) << log.status();
  Write(log->get(), a_, 10, "x");
  log->reset();
  EXPECT_EQ(Lines(path_).size(), 1u);
  EXPECT_EQ(Size(path_ + ".1"), -1);
}

TEST_F(DecisionLogTest, AFailingRotationDropsAndCountsInsteadOfGrowing) {
  DecisionLogOptions o;
  o.max_bytes = 64 << 10;
  o.keep = 1;
  o.rate_bytes = 0;
  // PATH.1 is a non-empty directory: rename(PATH, PATH.1) fails (root too).
  ASSERT_EQ(mkdir((path_ + ".1").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((path_ + ".1/d").c_str(), 0755), 0);
  auto log = DecisionLog::Open(path_, o);
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 100; ++i) Write(log->get(), a_, kLongPath, std::to_string(i));
  EXPECT_LE(Size(path_), static_cast<off_t>(o.max_bytes));
  EXPECT_GT((*log)->dropped_lines(), 50u);
  EXPECT_EQ((*log)->rotations(), 0u);
}

TEST_F(DecisionLogTest, KeepOutOfRangeIsRefused) {
  DecisionLogOptions o;
  o.keep = DecisionLog::kMaxKeep + 1;
  EXPECT_FALSE(DecisionLog::Open(path_, o).ok());
  o.keep = -1;
  EXPECT_FALSE(DecisionLog::Open(path_, o).ok());
}

TEST_F(DecisionLogTest, RateLimitDropsOnlyTheFloodersLinesAndReportsTheCount) {
  DecisionLogOptions o;
  o.rate_bytes = 64 << 10;  // the bucket holds kMinBurstBytes
  o.max_bytes = 0;
  auto log = DecisionLog::Open(path_, o);
  ASSERT_TRUE(log.ok()) << log.status();
  const int kFlood = 3000;  // ~12 MB offered
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kFlood; ++i) {
    Write(log->get(), a_, kLongPath, std::to_string(i));
    if (i % 150 == 0) Write(log->get(), b_, 20, std::to_string(i));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const uint64_t dropped = (*log)->dropped_lines();
  log->reset();  // reports what is still pending
  auto t = Count(Lines(path_));
  // What the bucket allows in that time, plus one line of slack.
  const double allowed = DecisionLog::kMinBurstBytes + o.rate_bytes * secs + kLongPath + 200;
  EXPECT_LE(t["flood"].logged_bytes, allowed) << secs << " s";
  EXPECT_GT(t["flood"].dropped, 0u);
  EXPECT_EQ(t["flood"].logged + t["flood"].dropped, static_cast<uint64_t>(kFlood));
  EXPECT_EQ(t["flood"].dropped, dropped);
  EXPECT_GE(t["flood"].dropped_bytes, t["flood"].dropped * kLongPath);
  EXPECT_EQ(t["quiet"].logged, 20u) << "the flood cost another container its lines";
  EXPECT_EQ(t["quiet"].dropped, 0u);
}

TEST_F(DecisionLogTest, DroppedCountIsReportedWhileTheLogStaysOpen) {
  DecisionLogOptions o;
  o.rate_bytes = 1024;
  o.report_interval = absl::Milliseconds(50);
  auto log = DecisionLog::Open(path_, o);
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 600; ++i) Write(log->get(), a_, kLongPath, std::to_string(i));
  ASSERT_GT((*log)->dropped_lines(), 0u);
  // Every write is done: the reporter's next ticks write the whole count.
  uint64_t reported = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (reported != (*log)->dropped_lines() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reported = Count(Lines(path_))["flood"].dropped;
  }
  EXPECT_EQ(reported, (*log)->dropped_lines());
}

TEST_F(DecisionLogTest, StdoutIsBoundedByTheRateLimitToo) {
  DecisionLogOptions o;
  o.rate_bytes = 64 << 10;
  // Point fd 1 at a file for the duration (gtest prints nothing meanwhile).
  fflush(stdout);
  int saved = dup(1);
  ASSERT_GE(saved, 0);
  int out = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(out, 0);
  ASSERT_EQ(dup2(out, 1), 1);
  close(out);
  const int kFlood = 3000;
  const auto t0 = std::chrono::steady_clock::now();
  {
    auto log = DecisionLog::Open("-", o);
    if (log.ok()) {
      for (int i = 0; i < kFlood; ++i) Write(log->get(), a_, kLongPath, std::to_string(i));
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  dup2(saved, 1);
  close(saved);
  auto t = Count(Lines(path_));
  const double allowed = DecisionLog::kMinBurstBytes + o.rate_bytes * secs + kLongPath + 200;
  EXPECT_GT(t["flood"].logged, 0u);
  EXPECT_LE(t["flood"].logged_bytes, allowed) << secs << " s";
  EXPECT_GT(t["flood"].dropped, 0u);
  EXPECT_EQ(t["flood"].logged + t["flood"].dropped, static_cast<uint64_t>(kFlood));
}

TEST_F(DecisionLogTest, NoLimitKeepsEveryLine) {
  DecisionLogOptions o;
  o.rate_bytes = 0;
  o.max_bytes = 0;
  auto log = DecisionLog::Open(path_, o);
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 500; ++i) Write(log->get(), a_, kLongPath, std::to_string(i));
  log->reset();
  EXPECT_EQ(Count(Lines(path_))["flood"].logged, 500u);
}

}  // namespace
}  // namespace seccomp_agent
