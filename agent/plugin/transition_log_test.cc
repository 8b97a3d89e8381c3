#include "agent/plugin/transition_log.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace seccomp_agent::plugin {
namespace {

class TransitionLogTest : public ::testing::Test {
 protected:
  TransitionLog log_{"p", "are denied with EPERM (on_error: deny)", 100, 3,
                     [this](LogLevel level, const std::string& line) {
                       lines_.push_back(line);
                       levels_.push_back(level);
                     }};
  std::vector<std::string> lines_;
  std::vector<LogLevel> levels_;
};

TEST_F(TransitionLogTest, QuietWhileHealthy) {
  log_.OnAnswer();
  log_.OnServing();
  log_.OnTimeout();
  log_.OnTimeout();
  log_.OnAnswer();  // the streak is broken
  log_.OnTimeout();
  log_.OnTimeout();
  log_.OnOtherError();
  EXPECT_TRUE(lines_.empty());
}

TEST_F(TransitionLogTest, UnavailableOnceThenBackOnce) {
  log_.OnUnavailable("connection refused");
  log_.OnUnavailable("connection refused");
  log_.OnTimeout();
  log_.OnServing();
  log_.OnAnswer();
  ASSERT_EQ(lines_.size(), 2u);
  EXPECT_EQ(lines_[0],
            "plugin p unavailable: connection refused; its calls are denied with EPERM "
            "(on_error: deny) until it answers again");
  EXPECT_EQ(levels_[0], LogLevel::kWarn);
  EXPECT_NE(lines_[1].find("plugin p healthy again after "), std::string::npos) << lines_[1];
  EXPECT_NE(lines_[1].find("(3 calls failed meanwhile)"), std::string::npos) << lines_[1];
  EXPECT_EQ(levels_[1], LogLevel::kInfo);
}

TEST_F(TransitionLogTest, TimeoutStreakOnceAndHealthChecksDoNotEndIt) {
  for (int i = 0; i < 6; ++i) log_.OnTimeout();
  log_.OnServing();  // health answers, calls do not: still down
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0],
            "plugin p: 3 calls in a row timed out (timeout_ms 100); its calls are denied with "
            "EPERM (on_error: deny) until it answers again");
  log_.OnAnswer();
  ASSERT_EQ(lines_.size(), 2u);
  EXPECT_NE(lines_[1].find("(6 calls failed meanwhile)"), std::string::npos) << lines_[1];
}

TEST_F(TransitionLogTest, TimingOutThenRefusedIsANewTransition) {
  for (int i = 0; i < 3; ++i) log_.OnTimeout();
  log_.OnUnavailable("socket closed");
  log_.OnUnavailable("socket closed");
  EXPECT_EQ(lines_.size(), 2u);
}

}  // namespace
}  // namespace seccomp_agent::plugin
