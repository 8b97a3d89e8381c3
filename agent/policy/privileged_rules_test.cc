// The rules of the privileged actions, shared by the loader and plugins.
#include "agent/policy/privileged_rules.h"

#include <sys/mount.h>
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

namespace seccomp_agent {
namespace {

v1::Mount ProcAndTmpfs() {
  v1::Mount m;
  m.add_allow()->set_fstype("proc");
  v1::MountType* t = m.add_allow();
  t->set_fstype("tmpfs");
  t->add_options("size");
  t->add_options("mode");
  v1::MountType* s = m.add_allow();
  s->set_fstype("sysfs");
  s->set_readonly(true);
  return m;
}

TEST(PrivilegedRulesTest, MountListIsChecked) {
  EXPECT_TRUE(MountAppliesTo("mount"));
  EXPECT_FALSE(MountAppliesTo("umount2"));
  EXPECT_FALSE(CheckMount(ProcAndTmpfs()).has_value());
  v1::Mount empty;
  EXPECT_EQ(CheckMount(empty)->field, "allow");
  v1::Mount m = ProcAndTmpfs();
  m.mutable_allow(0)->set_fstype("ext4");  // needs a device
  EXPECT_EQ(CheckMount(m)->field, "allow[0].fstype");
  m = ProcAndTmpfs();
  m.mutable_allow(1)->set_fstype("nfs");  // needs the network
  EXPECT_EQ(CheckMount(m)->field, "allow[1].fstype");
  m = ProcAndTmpfs();
  m.mutable_allow(1)->add_options("size,uid");
  EXPECT_EQ(CheckMount(m)->field, "allow[1].options[2]");
  m = ProcAndTmpfs();
  m.mutable_allow(1)->add_options("source");
  EXPECT_EQ(CheckMount(m)->field, "allow[1].options[2]");
  m = ProcAndTmpfs();
  m.mutable_allow(0)->add_options("subset");  // the agent's: always pid
  EXPECT_EQ(CheckMount(m)->field, "allow[0].options[0]");
  m = ProcAndTmpfs();
  m.mutable_allow(2)->set_readonly(false);
  EXPECT_EQ(CheckMount(m)->field, "allow[2].readonly");
}

TEST(PrivilegedRulesTest, MountDecision) {
  const v1::Mount m = ProcAndTmpfs();
  // mount -t proc proc /mnt: always nosuid, nodev, only the pid directories.
  MountVerdict v = DecideMount(m, {"proc", MS_MGC_VAL, ""});
  ASSERT_TRUE(v.plan.has_value()) << v.refusal;
  EXPECT_EQ(v.plan->entry->fstype(), "proc");
  EXPECT_EQ(v.plan->attrs, uint64_t{MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV});
  ASSERT_EQ(v.plan->options.size(), 1u);
  EXPECT_EQ(v.plan->options[0], (std::pair<std::string, std::string>{"subset", "pid"}));
  v = DecideMount(m, {"proc", MS_NOEXEC | MS_RDONLY | MS_NOATIME | MS_SILENT, ""});
  ASSERT_TRUE(v.plan.has_value()) << v.refusal;
  EXPECT_EQ(v.plan->attrs, uint64_t{MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME});
  // A readonly entry is read-only whatever the task asks.
  v = DecideMount(m, {"sysfs", 0, ""});
  ASSERT_TRUE(v.plan.has_value());
  EXPECT_TRUE(v.plan->attrs & MOUNT_ATTR_RDONLY);
  // Listed options, any value; a bare flag option has value "".
  v = DecideMount(m, {"tmpfs", 0, "size=1m,mode=1777,size"});
  ASSERT_TRUE(v.plan.has_value()) << v.refusal;
  ASSERT_EQ(v.plan->options.size(), 3u);
  EXPECT_EQ(v.plan->options[0], (std::pair<std::string, std::string>{"size", "1m"}));
  EXPECT_EQ(v.plan->options[1], (std::pair<std::string, std::string>{"mode", "1777"}));
  EXPECT_EQ(v.plan->options[2], (std::pair<std::string, std::string>{"size", ""}));
  // Refusals.
  EXPECT_EQ(DecideMount(m, {"ext4", 0, ""}).refusal, "fstype ext4 is not in the allow list");
  EXPECT_EQ(DecideMount(m, {"proc", MS_BIND, ""}).refusal, "flag MS_BIND is not allowed");
  EXPECT_EQ(DecideMount(m, {"proc", MS_REMOUNT, ""}).refusal, "flag MS_REMOUNT is not allowed");
  EXPECT_EQ(DecideMount(m, {"proc", MS_MOVE, ""}).refusal, "flag MS_MOVE is not allowed");
  EXPECT_EQ(DecideMount(m, {"proc", MS_SHARED, ""}).refusal, "flag MS_SHARED is not allowed");
  EXPECT_EQ(DecideMount(m, {"proc", uint64_t{1} << 40, ""}).refusal,
            "flag 0x10000000000 is not allowed");
  EXPECT_EQ(DecideMount(m, {"tmpfs", 0, "size=1m,uid=0"}).refusal,
            "option uid is not listed for tmpfs");
  EXPECT_EQ(DecideMount(m, {"proc", 0, "hidepid=2"}).refusal,
            "option hidepid is not listed for proc");
  EXPECT_EQ(DecideMount(m, {"tmpfs", 0, std::string(4096, 's')}).refusal,
            "data is longer than 4095 bytes");
  EXPECT_EQ(DecideMount(m, {"tmpfs", 0, "size=1,source=/dev/sda"}).refusal,
            "option source is not listed for tmpfs");
}

TEST(PrivilegedRulesTest, SetxattrSyscalls) {
  EXPECT_TRUE(SetxattrAppliesTo("setxattr"));
  EXPECT_TRUE(SetxattrAppliesTo("lsetxattr"));
  EXPECT_TRUE(SetxattrAppliesTo("fsetxattr"));
  EXPECT_FALSE(SetxattrAppliesTo("getxattr"));
  EXPECT_FALSE(SetxattrAppliesTo("removexattr"));
}

v1::Setxattr Names(std::initializer_list<const char*> names) {
  v1::Setxattr x;
  for (const char* n : names) x.add_allow_names(n);
  return x;
}

TEST(PrivilegedRulesTest, SetxattrNamesMustBeTrustedGlobs) {
  EXPECT_FALSE(CheckSetxattr(Names({"trusted.overlay.*"})).has_value());
  EXPECT_FALSE(CheckSetxattr(Names({"trusted.overlay.opaque", "trusted.overlay.[ou]*"})));
  ASSERT_TRUE(CheckSetxattr(v1::Setxattr()).has_value());
  EXPECT_EQ(CheckSetxattr(v1::Setxattr())->field, "allow_names");
  // Namespaces the agent must never set with its privilege (file
  // capabilities, LSM labels, ACLs), and those that need none (user.*).
  for (const char* bad : {"security.capability", "security.*", "system.posix_acl_access", "user.*",
                          "*", "trusted.", "trusted", "Trusted.x", "*trusted.x"}) {
    std::optional<ActionProblem> p = CheckSetxattr(Names({"trusted.overlay.*", bad}));
    ASSERT_TRUE(p.has_value()) << bad;
    EXPECT_EQ(p->field, "allow_names[1]") << bad;
    EXPECT_NE(p->message.find("must start with \"trusted.\""), std::string::npos) << p->message;
  }
  EXPECT_TRUE(CheckSetxattr(Names({"trusted.[a"})).has_value());  // unterminated set
  EXPECT_TRUE(CheckSetxattr(Names({(std::string("trusted.") + std::string(250, 'a')).c_str()})));
}

TEST(PrivilegedRulesTest, SetxattrNameVerdicts) {
  const v1::Setxattr x = Names({"trusted.overlay.*", "trusted.exact"});
  EXPECT_EQ(DecideXattrName(x, "trusted.overlay.opaque"), XattrVerdict::kSet);
  EXPECT_EQ(DecideXattrName(x, "trusted.overlay.redirect"), XattrVerdict::kSet);
  EXPECT_EQ(DecideXattrName(x, "trusted.overlay.a.b"), XattrVerdict::kSet);  // * spans dots
  EXPECT_EQ(DecideXattrName(x, "trusted.exact"), XattrVerdict::kSet);
  EXPECT_EQ(DecideXattrName(x, "trusted.exactly"), XattrVerdict::kRefuse);
  EXPECT_EQ(DecideXattrName(x, "trusted.foo"), XattrVerdict::kRefuse);
  EXPECT_EQ(DecideXattrName(x, "trusted.overlay"), XattrVerdict::kRefuse);
  EXPECT_EQ(DecideXattrName(x, "trusted."), XattrVerdict::kRefuse);
  // Outside trusted.*: the kernel decides with the task's own privilege.
  EXPECT_EQ(DecideXattrName(x, "user.overlay.opaque"), XattrVerdict::kContinue);
  EXPECT_EQ(DecideXattrName(x, "security.capability"), XattrVerdict::kContinue);
  EXPECT_EQ(DecideXattrName(x, "TRUSTED.overlay.opaque"), XattrVerdict::kContinue);
}

v1::Mount WithBinds() {
  v1::Mount m = ProcAndTmpfs();
  v1::MountType* b = m.add_allow();
  b->mutable_bind()->set_from_glob("/srv/data/**");
  b->mutable_bind()->set_to_glob("/mnt/*");
  v1::MountType* ro = m.add_allow();
  ro->mutable_bind()->set_from_glob("/etc/ro/**");
  ro->mutable_bind()->set_to_glob("/ro");
  ro->set_readonly(true);
  return m;
}

TEST(PrivilegedRulesTest, BindEntriesAreChecked) {
  EXPECT_FALSE(CheckMount(WithBinds()).has_value());
  v1::Mount m = WithBinds();
  m.mutable_allow(3)->set_fstype("proc");  // one or the other
  EXPECT_EQ(CheckMount(m)->field, "allow[3].bind");
  m = WithBinds();
  m.mutable_allow(3)->add_options("size");
  EXPECT_EQ(CheckMount(m)->field, "allow[3].bind");
  m = WithBinds();
  m.mutable_allow(3)->mutable_bind()->set_from_glob("srv/**");  // relative
  EXPECT_EQ(CheckMount(m)->field, "allow[3].bind.from_glob");
  m = WithBinds();
  m.mutable_allow(3)->mutable_bind()->clear_to_glob();
  EXPECT_EQ(CheckMount(m)->field, "allow[3].bind.to_glob");
  m = WithBinds();
  m.mutable_allow(3)->mutable_bind()->set_to_glob("/mnt/a**");  // ** inside a component
  EXPECT_EQ(CheckMount(m)->field, "allow[3].bind.to_glob");
  m = WithBinds();
  m.mutable_allow(3)->mutable_bind()->set_from_glob("/srv/[a");
  EXPECT_EQ(CheckMount(m)->field, "allow[3].bind.from_glob");
}

TEST(PrivilegedRulesTest, BindDecision) {
  EXPECT_TRUE(IsBindCall(MS_BIND));
  EXPECT_TRUE(IsBindCall(MS_MGC_VAL | MS_BIND | MS_REC));
  EXPECT_TRUE(IsBindCall(MS_REMOUNT | MS_BIND | MS_RDONLY));
  EXPECT_FALSE(IsBindCall(MS_REMOUNT | MS_RDONLY));
  EXPECT_FALSE(IsBindCall(0));
  const v1::Mount m = WithBinds();
  // Both paths match one entry: always nosuid, nodev.
  BindVerdict v = DecideBind(m, {MS_BIND, "/srv/data/a", "/mnt/x"});
  ASSERT_TRUE(v.plan.has_value()) << v.refusal;
  EXPECT_EQ(v.plan->entry, &m.allow(3));
  EXPECT_FALSE(v.plan->remount);
  EXPECT_FALSE(v.plan->recursive);
  EXPECT_EQ(v.plan->attrs, uint64_t{MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV});
  v = DecideBind(m, {MS_MGC_VAL | MS_BIND | MS_REC | MS_NOEXEC, "/srv/data", "/mnt/x"});
  ASSERT_TRUE(v.plan.has_value()) << v.refusal;
  EXPECT_TRUE(v.plan->recursive);
  EXPECT_EQ(v.plan->attrs, uint64_t{MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC});
  // A readonly entry is read-only whatever the task asks.
  v = DecideBind(m, {MS_BIND, "/etc/ro/f", "/ro"});
  ASSERT_TRUE(v.plan.has_value()) << v.refusal;
  EXPECT_TRUE(v.plan->attrs & MOUNT_ATTR_RDONLY);
  // A remount only names the target, and only adds attributes.
  v = DecideBind(m, {MS_REMOUNT | MS_BIND | MS_RDONLY, "", "/mnt/x"});
  ASSERT_TRUE(v.plan.has_value()) << v.refusal;
  EXPECT_TRUE(v.plan->remount);
  EXPECT_EQ(v.plan->attrs, uint64_t{MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY});
  // Refusals name what did not match.
  EXPECT_EQ(DecideBind(m, {MS_BIND, "/etc", "/mnt/x"}).refusal,
            "bind /etc -> /mnt/x matches no bind entry");
  EXPECT_EQ(DecideBind(m, {MS_BIND, "/srv/data/a", "/mnt/x/y"}).refusal,
            "bind /srv/data/a -> /mnt/x/y matches no bind entry");
  EXPECT_EQ(DecideBind(m, {MS_BIND, "/srv/data/a", "/ro"}).refusal,  // one entry must hold both
            "bind /srv/data/a -> /ro matches no bind entry");
  EXPECT_EQ(DecideBind(m, {MS_REMOUNT | MS_BIND, "", "/etc"}).refusal,
            "bind remount of /etc matches no bind entry");
  EXPECT_EQ(DecideBind(m, {MS_BIND | MS_MOVE, "/srv/data", "/mnt/x"}).refusal,
            "flag MS_MOVE is not allowed on a bind mount");
  EXPECT_EQ(DecideBind(m, {MS_BIND | MS_SHARED, "/srv/data", "/mnt/x"}).refusal,
            "flag MS_SHARED is not allowed on a bind mount");
  EXPECT_EQ(DecideBind(m, {MS_REMOUNT | MS_BIND | MS_REC, "", "/mnt/x"}).refusal,
            "flag MS_REC is not allowed on a bind mount");
  EXPECT_EQ(DecideBind(m, {MS_BIND | MS_NOATIME, "/srv/data", "/mnt/x"}).refusal,
            "flag MS_NOATIME is not allowed on a bind mount");
  // Without a bind entry, as before.
  EXPECT_EQ(DecideBind(ProcAndTmpfs(), {MS_BIND, "/srv/data", "/mnt/x"}).refusal,
            "flag MS_BIND is not allowed");
}

}  // namespace
}  // namespace seccomp_agent
