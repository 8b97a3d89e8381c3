#include "agent/common/proc_text.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

constexpr absl::string_view kStatus =
    "Name:\tcat\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4321\nNgid:\t0\n"
    "Uid:\t0\t1000\t0\t1000\nNStgid:\t4321\t7\nNSpid:\t4322\t8\nCapEff:\t0000000000000000\n";

TEST(ProcText, StatusFields) {
  EXPECT_EQ(StatusField(kStatus, "Tgid"), "4321");
  EXPECT_EQ(StatusField(kStatus, "State"), "S (sleeping)");
  EXPECT_EQ(StatusField(kStatus, "Uid"), "0\t1000\t0\t1000");
  EXPECT_FALSE(StatusField(kStatus, "Tg").has_value());  // whole keys only
  EXPECT_FALSE(StatusField("", "Tgid").has_value());
  EXPECT_EQ(StatusWords(*StatusField(kStatus, "NSpid")),
            (std::vector<absl::string_view>{"4322", "8"}));
}

TEST(ProcText, ForEachStopsWhenAsked) {
  std::vector<std::string> keys;
  ForEachStatusField(kStatus, [&](absl::string_view k, absl::string_view) {
    keys.emplace_back(k);
    return k != "State";
  });
  EXPECT_EQ(keys, (std::vector<std::string>{"Name", "Umask", "State"}));
}

TEST(ProcText, StatFieldsSkipACommWithBlanksAndParens) {
  // The comm is the task's to choose: ") T 1 2" must not be read as fields.
  const std::string stat =
      "77 (a) T 1 2 (x) S 1 77 77 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 "
      "123456 0 0\n";
  std::vector<absl::string_view> f = StatFieldsAfterComm(stat);
  ASSERT_GE(f.size(), 20u);
  EXPECT_EQ(f[0], "S");
  EXPECT_EQ(f[19], "123456");
  EXPECT_TRUE(StatFieldsAfterComm("garbage").empty());
}

}  // namespace
}  // namespace seccomp_agent
