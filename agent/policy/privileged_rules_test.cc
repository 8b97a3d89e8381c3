// The rules of the privileged actions, shared by the loader and plugins.
#include "agent/policy/privileged_rules.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

v1::Mknod DefaultList() {
  v1::Mknod m;
  for (auto [maj, min] : {std::pair{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {10, 229}}) {
    v1::DeviceNode* d = m.add_allow();
    d->set_type("c");
    d->set_major(maj);
    d->set_minor(min);
  }
  return m;
}

TEST(PrivilegedRulesTest, WhichSyscalls) {
  EXPECT_TRUE(SysinfoAppliesTo("sysinfo"));
  EXPECT_FALSE(SysinfoAppliesTo("uname"));
  EXPECT_TRUE(MknodAppliesTo("mknod"));
  EXPECT_TRUE(MknodAppliesTo("mknodat"));
  EXPECT_FALSE(MknodAppliesTo("mkdir"));
}

TEST(PrivilegedRulesTest, SysinfoNeedsFromCgroup) {
  v1::Sysinfo s;
  ASSERT_TRUE(CheckSysinfo(s).has_value());
  EXPECT_EQ(CheckSysinfo(s)->field, "from_cgroup");
  s.set_from_cgroup(true);
  EXPECT_FALSE(CheckSysinfo(s).has_value());
}

TEST(PrivilegedRulesTest, MknodListIsChecked) {
  EXPECT_FALSE(CheckMknod(DefaultList()).has_value());
  v1::Mknod empty;
  ASSERT_TRUE(CheckMknod(empty).has_value());
  EXPECT_EQ(CheckMknod(empty)->field, "allow");
  v1::Mknod m = DefaultList();
  m.mutable_allow(2)->set_type("block");
  ASSERT_TRUE(CheckMknod(m).has_value());
  EXPECT_EQ(CheckMknod(m)->field, "allow[2].type");
  m = DefaultList();
  m.mutable_allow(0)->set_major(kMaxDeviceMajor + 1);
  EXPECT_EQ(CheckMknod(m)->field, "allow[0].major");
  m = DefaultList();
  m.mutable_allow(6)->set_minor(kMaxDeviceMinor + 1);
  EXPECT_EQ(CheckMknod(m)->field, "allow[6].minor");
  m.mutable_allow(6)->set_minor(kMaxDeviceMinor);
  EXPECT_FALSE(CheckMknod(m).has_value());
}

TEST(PrivilegedRulesTest, DecodesWhatGlibcPasses) {
  // glibc passes makedev()'s low 32 bits; the kernel decodes new_decode_dev.
  DeviceRequest r = DecodeMknod(S_IFCHR | 0666, makedev(1, 3));
  EXPECT_EQ(r.type, 'c');
  EXPECT_EQ(r.major, 1u);
  EXPECT_EQ(r.minor, 3u);
  r = DecodeMknod(S_IFBLK | 0600, makedev(8, 0));
  EXPECT_EQ(r.type, 'b');
  EXPECT_EQ(r.major, 8u);
  r = DecodeMknod(S_IFCHR, makedev(4095, 1048575));
  EXPECT_EQ(r.major, 4095u);
  EXPECT_EQ(r.minor, 1048575u);
  // Upper register bits are not part of the syscall's unsigned int dev.
  r = DecodeMknod(S_IFCHR, (uint64_t{0xdead} << 32) | makedev(1, 3));
  EXPECT_EQ(r.major, 1u);
  EXPECT_EQ(r.minor, 3u);
  EXPECT_EQ(DecodeMknod(S_IFIFO | 0644, 0).type, 0);
  EXPECT_EQ(DecodeMknod(S_IFREG, 0).type, 0);
  EXPECT_EQ(DecodeMknod(0, 0).type, 0);  // mode 0 means a regular file
  EXPECT_EQ(DecodeMknod(S_IFSOCK, 0).type, 0);
}

TEST(PrivilegedRulesTest, OnlyListedDevicesAreFound) {
  const v1::Mknod m = DefaultList();
  EXPECT_NE(FindAllowedDevice(m, DecodeMknod(S_IFCHR, makedev(1, 3))), nullptr);
  EXPECT_NE(FindAllowedDevice(m, DecodeMknod(S_IFCHR, makedev(10, 229))), nullptr);
  // Same numbers, other type: not listed.
  EXPECT_EQ(FindAllowedDevice(m, DecodeMknod(S_IFBLK, makedev(1, 3))), nullptr);
  EXPECT_EQ(FindAllowedDevice(m, DecodeMknod(S_IFBLK, makedev(8, 0))), nullptr);
  EXPECT_EQ(FindAllowedDevice(m, DecodeMknod(S_IFCHR, makedev(1, 1))), nullptr);  // /dev/mem
  EXPECT_EQ(FindAllowedDevice(m, DecodeMknod(S_IFIFO, 0)), nullptr);
  EXPECT_EQ(DeviceText(DecodeMknod(S_IFCHR, makedev(1, 3))), "c 1:3");
}

}  // namespace
}  // namespace seccomp_agent
