// The pure parts of the bind mount checks (the mounts themselves:
// integration/privileged_e2e_test Bind*).
#include "agent/injector/bind_mount.h"

#include "agent/injector/privileged_util.h"
#include "gtest/gtest.h"

namespace seccomp_agent::injector {
namespace {

TEST(BindMountTest, MountBeneathIsOnComponentBorders) {
  EXPECT_TRUE(MountBeneath("/proc", "/proc/kcore"));
  EXPECT_TRUE(MountBeneath("/proc", "/proc/sys/fs/binfmt_misc"));
  EXPECT_FALSE(MountBeneath("/proc", "/proc"));  // the source's own mount
  EXPECT_FALSE(MountBeneath("/proc", "/procx/a"));
  EXPECT_FALSE(MountBeneath("/proc/sys", "/proc"));
  EXPECT_TRUE(MountBeneath("/", "/dev"));
  EXPECT_FALSE(MountBeneath("/", "/"));
}

TEST(BindMountTest, MountInfoPointsAreUnescaped) {
  const std::string text =
      "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda rw\n"
      "23 22 0:22 / /a\\040b rw - tmpfs t rw\n"
      "24 22 0:23 / /c\\134d rw master:2 - tmpfs t rw\n";
  EXPECT_EQ(MountPoints(text), (std::vector<std::string>{"/", "/a b", "/c\\d"}));
  MountInfoLine l = FindMount(text, 23);
  EXPECT_TRUE(l.found);
  EXPECT_FALSE(l.shared);
  EXPECT_EQ(l.mount_point, "/a b");
  EXPECT_TRUE(FindMount(text, 22).shared);
  EXPECT_FALSE(FindMount(text, 24).shared);
  EXPECT_FALSE(FindMount(text, 25).found);
}

}  // namespace
}  // namespace seccomp_agent::injector
