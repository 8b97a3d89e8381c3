#include "agent/plugin/decision.h"

#include <sys/syscall.h>

#include <random>

#include "agent/plugin/testing/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace seccomp_agent::plugin {
namespace {

using testing::BindEvent;
using testing::Container;
using testing::OpenatEvent;
using testing::WriteEvent;

const std::vector<std::string> kRoots = {"/srv/redirect"};

absl::Status Validate(const v1::Decision& d, const SyscallEvent& ev) {
  return ValidateDecision(d, ContextFor(ev, &kRoots));
}

v1::Decision InjectOpenat(const std::string& path) {
  v1::Decision d;
  v1::Inject* in = d.mutable_inject();
  in->set_nr(SYS_openat);
  for (uint64_t a : {static_cast<uint64_t>(-100), uint64_t{0}, uint64_t{0}, uint64_t{0},
                     uint64_t{0}, uint64_t{0}}) {
    in->add_args(a);
  }
  in->set_args_in_buf_mask(0x2);
  in->set_buf(path + std::string(1, '\0'));
  return d;
}

class DecisionTest : public ::testing::Test {
 protected:
  ContainerInfo c_ = Container("c1");
  SyscallEvent open_ = OpenatEvent(&c_, "/etc/passwd");
  SyscallEvent write_ = WriteEvent(&c_, 3, "hello world");
  SyscallEvent bind_ = BindEvent(&c_, 5, "0.0.0.0", 80);
};

TEST_F(DecisionTest, EmptyDecisionIsInvalid) { EXPECT_FALSE(Validate(v1::Decision(), open_).ok()); }

TEST_F(DecisionTest, AllowAndNoOpinionAreValidEverywhere) {
  v1::Decision d;
  d.mutable_allow();
  EXPECT_TRUE(Validate(d, open_).ok());
  d.mutable_no_opinion();
  EXPECT_TRUE(Validate(d, bind_).ok());
}

TEST_F(DecisionTest, DenyErrnoRange) {
  v1::Decision d;
  for (int e : {1, 13, 4095}) {
    d.mutable_deny()->set_errno_code(e);
    EXPECT_TRUE(Validate(d, open_).ok()) << e;
  }
  for (int e : {0, -1, 4096, 5000}) {
    d.mutable_deny()->set_errno_code(e);
    EXPECT_FALSE(Validate(d, open_).ok()) << e;
  }
}

TEST_F(DecisionTest, ReturnRules) {
  v1::Decision d;
  d.mutable_return_()->set_value(0);
  EXPECT_FALSE(Validate(d, open_).ok()) << "openat creates an fd: no spoofed return";
  d.mutable_return_()->set_value(11);
  EXPECT_TRUE(Validate(d, write_).ok());
  d.mutable_return_()->set_value(12);
  EXPECT_FALSE(Validate(d, write_).ok()) << "more than count";
  d.mutable_return_()->set_value(-1);
  EXPECT_FALSE(Validate(d, write_).ok()) << "an errno in disguise";
  SyscallEvent mkdir = open_;
  mkdir.syscall = "mkdirat";
  mkdir.nr = SYS_mkdirat;
  d.mutable_return_()->set_value(0);
  EXPECT_TRUE(Validate(d, mkdir).ok());
  d.mutable_return_()->set_value(-4095);
  EXPECT_FALSE(Validate(d, mkdir).ok());
  EXPECT_FALSE(ReturnAllowedFor("execve"));
  EXPECT_FALSE(ReturnAllowedFor("clone3"));
  EXPECT_FALSE(ReturnAllowedFor("mmap"));
  EXPECT_TRUE(ReturnAllowedFor("unlinkat"));
}

TEST_F(DecisionTest, InjectOpenatValid) {
  EXPECT_TRUE(Validate(InjectOpenat("/srv/x"), open_).ok());
}

TEST_F(DecisionTest, InjectNrMismatch) {
  v1::Decision d = InjectOpenat("/srv/x");
  d.mutable_inject()->set_nr(SYS_open);
  absl::Status s = Validate(d, open_);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("trapped nr"), std::string::npos) << s;
}

TEST_F(DecisionTest, InjectNotInWhitelist) {
  SyscallEvent mkdir = open_;
  mkdir.syscall = "mkdirat";
  mkdir.nr = SYS_mkdirat;
  v1::Decision d = InjectOpenat("/srv/x");
  d.mutable_inject()->set_nr(SYS_mkdirat);
  EXPECT_FALSE(Validate(d, mkdir).ok());
}

TEST_F(DecisionTest, InjectOffsetOutsideBuf) {
  v1::Decision d = InjectOpenat("/srv/x");
  d.mutable_inject()->set_args(1, 7);  // buf is 7 bytes: offsets 0..6
  EXPECT_FALSE(Validate(d, open_).ok());
  d.mutable_inject()->set_args(1, 6);  // points at the NUL: empty path, but in bounds
  EXPECT_TRUE(Validate(d, open_).ok());
}

TEST_F(DecisionTest, InjectMaskBits) {
  v1::Decision d = InjectOpenat("/srv/x");
  d.mutable_inject()->set_args_in_buf_mask(0x40);  // bit 6: beyond args[0..5]
  EXPECT_FALSE(Validate(d, open_).ok());
  d.mutable_inject()->set_args_in_buf_mask(0x6);  // flags marked too
  EXPECT_FALSE(Validate(d, open_).ok());
  d.mutable_inject()->set_args_in_buf_mask(0);  // path pointer not in buf
  EXPECT_FALSE(Validate(d, open_).ok());
}

TEST_F(DecisionTest, InjectCapAndShape) {
  v1::Decision d = InjectOpenat(std::string(kMaxInjectBytes, 'a'));  // + NUL: one byte over
  EXPECT_FALSE(Validate(d, open_).ok());
  d = InjectOpenat(std::string(kMaxInjectBytes - 1, 'a'));
  EXPECT_TRUE(Validate(d, open_).ok());
  d = InjectOpenat("/srv/x");
  d.mutable_inject()->mutable_args()->RemoveLast();
  EXPECT_FALSE(Validate(d, open_).ok()) << "5 args";
  d = InjectOpenat("/srv/x");
  d.mutable_inject()->set_buf("/srv/x");  // no NUL
  EXPECT_FALSE(Validate(d, open_).ok());
  d = InjectOpenat("/srv/x");
  SyscallEvent compat = open_;
  compat.arch = AUDIT_ARCH_I386;
  EXPECT_FALSE(Validate(d, compat).ok()) << "compat trap";
}

TEST_F(DecisionTest, InjectWriteAndBind) {
  v1::Decision d;
  v1::Inject* in = d.mutable_inject();
  in->set_nr(SYS_write);
  for (uint64_t a : {uint64_t{3}, uint64_t{0}, uint64_t{5}, uint64_t{0}, uint64_t{0}, uint64_t{0}})
    in->add_args(a);
  in->set_args_in_buf_mask(0x2);
  in->set_buf("HELLO");
  EXPECT_TRUE(Validate(d, write_).ok());
  in->set_args(2, 6);  // count past buf
  EXPECT_FALSE(Validate(d, write_).ok());
  in->set_args(2, 5);
  in->set_args(0, 4);  // another fd
  EXPECT_FALSE(Validate(d, write_).ok());

  v1::Decision b;
  v1::Inject* bi = b.mutable_inject();
  bi->set_nr(SYS_bind);
  for (uint64_t a : {uint64_t{5}, uint64_t{0}, uint64_t{16}, uint64_t{0}, uint64_t{0}, uint64_t{0}})
    bi->add_args(a);
  bi->set_args_in_buf_mask(0x2);
  bi->set_buf(std::string(16, '\0'));
  EXPECT_TRUE(Validate(b, bind_).ok());
  bi->set_args(2, 129);
  bi->set_buf(std::string(200, '\0'));
  EXPECT_FALSE(Validate(b, bind_).ok()) << "addrlen over sockaddr_storage";
}

TEST_F(DecisionTest, RedirectOpenRules) {
  v1::Decision d;
  (*d.mutable_redirect_open()->mutable_exact())["/etc/passwd"] = "/srv/redirect/passwd";
  EXPECT_TRUE(Validate(d, open_).ok());
  EXPECT_FALSE(Validate(d, bind_).ok()) << "redirect for a bind";
  (*d.mutable_redirect_open()->mutable_exact())["/etc/passwd"] = "/etc/shadow";
  EXPECT_FALSE(Validate(d, open_).ok()) << "outside redirect_roots";
  (*d.mutable_redirect_open()->mutable_exact())["/etc/passwd"] = "/srv/redirect/../../etc/shadow";
  EXPECT_FALSE(Validate(d, open_).ok()) << "not normalized";
  EXPECT_FALSE(ValidateDecision(d, ContextFor(open_, nullptr)).ok()) << "no roots";
  v1::Decision p;
  (*p.mutable_redirect_open()->mutable_prefix())["/etc/"] = "/srv/redirect/etc/";
  EXPECT_TRUE(Validate(p, open_).ok());
  (*p.mutable_redirect_open()->mutable_prefix())["/etc/"] = "/srv/redirect/etc";
  EXPECT_FALSE(Validate(p, open_).ok()) << "trailing / mismatch";
  v1::Decision empty;
  empty.mutable_redirect_open();
  EXPECT_FALSE(Validate(empty, open_).ok());
}

TEST_F(DecisionTest, RewriteBindAndReplaceWrite) {
  v1::Decision d;
  (*d.mutable_rewrite_bind()->mutable_map())["0.0.0.0:80"] = "127.0.0.1:8080";
  EXPECT_TRUE(Validate(d, bind_).ok());
  EXPECT_FALSE(Validate(d, open_).ok());
  (*d.mutable_rewrite_bind()->mutable_map())["0.0.0.0:80"] = "[::1]:8080";
  EXPECT_FALSE(Validate(d, bind_).ok()) << "family change";
  v1::Decision w;
  w.mutable_replace_write()->set_replace("xxxxx");
  EXPECT_TRUE(Validate(w, write_).ok());
  EXPECT_FALSE(Validate(w, open_).ok());
  w.mutable_replace_write()->set_redact_regex("secret");
  EXPECT_FALSE(Validate(w, write_).ok()) << "regex refused from plugins";
}

// The validator must survive anything a plugin can send: random bytes
// parsed as a Decision (what does not parse is skipped), and random
// mutations of valid injects, against each syscall kind. The fuzz target
// will go further; this keeps a floor in every test run.
TEST_F(DecisionTest, ValidatorSurvivesRandomInput) {
  std::mt19937_64 rng(12345);
  int parsed = 0, valid = 0;
  const SyscallEvent* evs[] = {&open_, &write_, &bind_};
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(rng() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    v1::Decision d;
    if (i % 2 == 0) {
      if (!d.ParseFromString(bytes)) continue;
    } else {
      d = InjectOpenat(bytes);
      v1::Inject* in = d.mutable_inject();
      in->set_nr(rng() % 2 ? SYS_openat : rng() % 512);
      in->set_args_in_buf_mask(static_cast<uint32_t>(rng() % 256));
      for (int a = 0; a < 6; ++a) in->set_args(a, rng() % 2 ? rng() % 80 : rng());
    }
    ++parsed;
    for (const SyscallEvent* ev : evs) valid += Validate(d, *ev).ok();
  }
  EXPECT_GT(parsed, 10000);
  EXPECT_GT(valid, 0);  // some random decisions are valid (e.g. an allow)
}

TEST_F(DecisionTest, UnknownCacheScopeIsInvalid) {
  v1::Decision d;
  d.mutable_allow();
  d.mutable_cache()->set_scope(static_cast<v1::CacheHint::Scope>(7));
  EXPECT_FALSE(Validate(d, open_).ok());
}

TEST_F(DecisionTest, NotificationCarriesEverything) {
  ContainerInfo c = Container("c9", {{"a", "b"}});
  c.pod_namespace = "ns";
  c.pod_name = "pod";
  c.container_name = "ctr";
  c.metadata = "meta";
  SyscallEvent ev = WriteEvent(&c, 3, std::string(10000, 'x'));
  v1::Notification n = BuildNotification(ev, 4096);
  EXPECT_EQ(n.container().id(), "c9");
  EXPECT_EQ(n.container().annotations().at("a"), "b");
  EXPECT_EQ(n.container().listener_metadata(), "meta");
  EXPECT_EQ(n.container().kubernetes().pod_name(), "pod");
  EXPECT_EQ(n.syscall_name(), "write");
  EXPECT_EQ(n.arch_name(), ArchName(NativeAuditArch()));
  ASSERT_EQ(n.args_size(), 6);
  EXPECT_EQ(n.decoded().write().data().size(), 4096u);
  EXPECT_EQ(n.decoded().write().count(), 10000u);
  EXPECT_TRUE(n.decoded().write().truncated());
  EXPECT_EQ(n.decoded().write().source(), v1::VALUE_SOURCE_TASK_MEMORY_SNAPSHOT);
  EXPECT_EQ(n.decoded().fd().value(), 3);
  EXPECT_EQ(n.decoded().fd().source(), v1::VALUE_SOURCE_REGISTERS);
  SyscallEvent o = OpenatEvent(&c, std::string("/bad\xff", 5));
  v1::Notification on = BuildNotification(o, 4096);
  std::string wire;
  ASSERT_TRUE(on.SerializeToString(&wire)) << "non-UTF-8 path must serialize (bytes field)";
  v1::Notification back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.decoded().path().value(), std::string("/bad\xff", 5));
  EXPECT_EQ(back.decoded().dirfd().value(), -100);
}

TEST_F(DecisionTest, NotificationCarriesTheResolvedPath) {
  SyscallEvent rel = OpenatEvent(&c_, "rel");
  rel.abs_path = "/secret/rel";
  v1::Notification n = BuildNotification(rel, 4096);
  EXPECT_EQ(n.decoded().path().value(), "rel");
  EXPECT_EQ(n.decoded().path().resolved(), "/secret/rel");
  // Absolute and not resolved further by the engine: the path itself, as
  // the policy's globs see it.
  n = BuildNotification(OpenatEvent(&c_, "/etc/a"), 4096);
  EXPECT_EQ(n.decoded().path().resolved(), "/etc/a");
  // Relative and unresolved (the engine says why in decode_error): empty.
  SyscallEvent lost = OpenatEvent(&c_, "rel");
  lost.decode_error = "relative path could not be resolved";
  n = BuildNotification(lost, 4096);
  EXPECT_EQ(n.decoded().path().resolved(), "");
  EXPECT_FALSE(n.decoded().error().empty());
  SyscallEvent ren = OpenatEvent(&c_, "a");
  ren.path2 = "b";
  ren.abs_path2 = "/d/b";
  n = BuildNotification(ren, 4096);
  EXPECT_EQ(n.decoded().path2().resolved(), "/d/b");
}

TEST_F(DecisionTest, CacheKeysTellResolvedPathsApart) {
  // The same relative path in two cwds names two files.
  SyscallEvent in_secret = OpenatEvent(&c_, "x");
  in_secret.abs_path = "/secret/x";
  SyscallEvent in_tmp = OpenatEvent(&c_, "x");
  in_tmp.abs_path = "/tmp/x";
  EXPECT_NE(ExactArgsKey("p", in_secret), ExactArgsKey("p", in_tmp));
}

TEST_F(DecisionTest, CacheKeys) {
  SyscallEvent a = OpenatEvent(&c_, "/etc/a");
  SyscallEvent a2 = a;
  a2.args[1] = 0x1234;  // same path at another address
  a2.pid = 99;
  SyscallEvent b = OpenatEvent(&c_, "/etc/b");
  EXPECT_EQ(ExactArgsKey("p", a), ExactArgsKey("p", a2));
  EXPECT_NE(ExactArgsKey("p", a), ExactArgsKey("p", b));
  EXPECT_NE(ExactArgsKey("p", a), ExactArgsKey("q", a));
  SyscallEvent flags = a;
  flags.args[2] = 1;  // O_WRONLY
  EXPECT_NE(ExactArgsKey("p", a), ExactArgsKey("p", flags));
  EXPECT_EQ(SyscallContainerKey("p", a), SyscallContainerKey("p", b));
  ContainerInfo other = Container("c2");
  SyscallEvent oc = OpenatEvent(&other, "/etc/a");
  EXPECT_NE(SyscallContainerKey("p", a), SyscallContainerKey("p", oc));
  EXPECT_NE(SyscallContainerKey("p", a), SyscallContainerKey("p", write_));
}

}  // namespace
}  // namespace seccomp_agent::plugin

namespace seccomp_agent::plugin {
namespace {

SyscallEvent EventNamed(const std::string& syscall) {
  SyscallEvent ev;
  ev.syscall = syscall;
  ev.arch = NativeAuditArch();
  return ev;
}

// The same rules as the policy loader (agent/policy/privileged_rules.h).
TEST(PrivilegedDecisionTest, SysinfoOnlyForSysinfoAndFromCgroup) {
  v1::Decision d;
  d.mutable_sysinfo()->set_from_cgroup(true);
  EXPECT_TRUE(Validate(d, EventNamed("sysinfo")).ok());
  absl::Status s = Validate(d, EventNamed("uname"));
  EXPECT_THAT(s.message(), ::testing::HasSubstr("sysinfo does not apply to uname"));
  d.mutable_sysinfo()->set_from_cgroup(false);
  s = Validate(d, EventNamed("sysinfo"));
  EXPECT_THAT(s.message(), ::testing::HasSubstr("sysinfo.from_cgroup: must be true"));
}

TEST(PrivilegedDecisionTest, MknodListIsChecked) {
  v1::Decision d;
  v1::DeviceNode* n = d.mutable_mknod()->add_allow();
  n->set_type("c");
  n->set_major(1);
  n->set_minor(3);
  EXPECT_TRUE(Validate(d, EventNamed("mknodat")).ok());
  EXPECT_THAT(Validate(d, EventNamed("openat")).message(),
              ::testing::HasSubstr("mknod does not apply to openat"));
  n->set_major(5000);
  EXPECT_THAT(Validate(d, EventNamed("mknod")).message(),
              ::testing::HasSubstr("mknod.allow[0].major: 5000 is larger than 4095"));
  d.mutable_mknod()->clear_allow();
  EXPECT_THAT(Validate(d, EventNamed("mknod")).message(),
              ::testing::HasSubstr("mknod.allow: needs at least one device"));
}

TEST(PrivilegedDecisionTest, MountListIsChecked) {
  v1::Decision d;
  d.mutable_mount()->add_allow()->set_fstype("proc");
  EXPECT_TRUE(Validate(d, EventNamed("mount")).ok());
  EXPECT_THAT(Validate(d, EventNamed("mknod")).message(),
              ::testing::HasSubstr("mount does not apply to mknod"));
  d.mutable_mount()->add_allow()->set_fstype("ext4");
  EXPECT_THAT(Validate(d, EventNamed("mount")).message(),
              ::testing::HasSubstr("mount.allow[1].fstype: \"ext4\" is not one the agent mounts"));
}

TEST(PrivilegedDecisionTest, MountBindEntriesAreChecked) {
  v1::Decision d;
  v1::MountBind* b = d.mutable_mount()->add_allow()->mutable_bind();
  b->set_from_glob("/data/**");
  b->set_to_glob("/mnt/**");
  EXPECT_TRUE(Validate(d, EventNamed("mount")).ok());
  b->set_from_glob("data/**");
  EXPECT_THAT(Validate(d, EventNamed("mount")).message(),
              ::testing::HasSubstr("mount.allow[0].bind.from_glob: must be an absolute path glob"));
  b->set_from_glob("/data/**");
  d.mutable_mount()->mutable_allow(0)->set_fstype("proc");
  EXPECT_THAT(Validate(d, EventNamed("mount")).message(),
              ::testing::HasSubstr("mount.allow[0].bind: a bind entry has no fstype"));
}

TEST(PrivilegedDecisionTest, SetxattrNamesAreChecked) {
  v1::Decision d;
  d.mutable_setxattr()->add_allow_names("trusted.overlay.*");
  EXPECT_TRUE(Validate(d, EventNamed("setxattr")).ok());
  EXPECT_TRUE(Validate(d, EventNamed("fsetxattr")).ok());
  EXPECT_THAT(Validate(d, EventNamed("removexattr")).message(),
              ::testing::HasSubstr("setxattr does not apply to removexattr"));
  d.mutable_setxattr()->add_allow_names("security.capability");
  EXPECT_THAT(Validate(d, EventNamed("lsetxattr")).message(),
              ::testing::HasSubstr("setxattr.allow_names[1]: \"security.capability\" must start"));
}

}  // namespace
}  // namespace seccomp_agent::plugin
