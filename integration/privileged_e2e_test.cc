// Privileged operations end to end (README "Privileged operations"): the
// real agent serves runc and crun containers whose process runs as uid 1000
// with no capabilities at all (noNewPrivileges), so every success below is
// the agent's doing, not the task's:
//  * `free` and `uptime` (busybox, through sysinfo(2)) inside a container
//    with a 256 MiB memory limit show 256 MiB and the container's uptime;
//  * `mknod /tmp/null c 1 3` creates a node owned by uid 1000 that behaves
//    as /dev/null; `mknod /tmp/sda b 8 0` fails with EPERM;
//  * `xattr_probe set trusted.overlay.opaque y DIR` (setfattr: busybox
//    has none) sets the attribute on a directory the container owns;
//    trusted.foo, a file it does not own, a FIFO or a device are EPERM;
//  * escape attempts against mknod (symlinks, "..", /proc magic links, a
//    FIFO or device at the name or in the path) create nothing outside the
//    container's root and never block the agent.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/container.h"
#include "integration/harness/test_util.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPolicy[] = R"(
version: 1
default_action: {allow: {}}
rules:
  - name: sysinfo-from-cgroup
    match: {syscalls: [sysinfo]}
    action: {sysinfo: {from_cgroup: true}}
  - name: harmless-devices
    match: {syscalls: [mknod, mknodat]}
    action:
      mknod:
        allow:
          - {type: c, major: 1, minor: 3}
          - {type: c, major: 1, minor: 5}
          - {type: c, major: 1, minor: 7}
          - {type: c, major: 1, minor: 8}
          - {type: c, major: 1, minor: 9}
          - {type: c, major: 5, minor: 0}
          - {type: c, major: 10, minor: 229}
  - name: virtual-mounts
    match: {syscalls: [mount]}
    action:
      mount:
        allow:
          - {fstype: proc}
          - {fstype: tmpfs, options: [size, mode]}
          - {bind: {from_glob: "/tmp/src/**", to_glob: "/mnt/**"}}
          - {bind: {from_glob: "/tmp/src/**", to_glob: "/tmp/dst/**"}}
  - name: overlay-xattrs
    match: {syscalls: [setxattr, lsetxattr, fsetxattr]}
    action: {setxattr: {allow_names: ["trusted.overlay.*"]}}
)";

constexpr int64_t k256MiB = int64_t{256} << 20;

class PrivilegedE2ETest : public ::testing::TestWithParam<Runtime> {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "needs root (containers)";
    AgentOptions o;
    o.policy_yaml = kPolicy;
    auto a = Agent::Start(o);
    ASSERT_TRUE(a.ok()) << a.status();
    agent_ = *std::move(a);
  }

  // `script` as uid 1000 without capabilities, sysinfo and mknod* trapped.
  ProcessResult Run(const std::string& name, const std::string& script,
                    std::optional<std::string> rootfs_propagation = std::nullopt) {
    id_ = UniqueContainerId(absl::StrCat("e2e-priv-", name, "-", RuntimeName(GetParam())));
    ContainerConfig cfg;
    cfg.args = {"sh", "-c", script};
    cfg.seccomp = SeccompConfig{
        agent_->socket_path(),
        std::nullopt,
        {"sysinfo", "mknod", "mknodat", "mount", "setxattr", "lsetxattr", "fsetxattr"}};
    // Root in a user namespace of its own, or uid 1000 in the host's.
    if (userns_host_id_.has_value()) {
      cfg.userns_host_id = userns_host_id_;
    } else {
      cfg.user = std::make_pair(1000u, 1000u);
    }
    cfg.no_capabilities = add_capabilities_.empty();
    cfg.add_capabilities = add_capabilities_;
    cfg.memory_limit = k256MiB;
    cfg.rootfs_propagation = std::move(rootfs_propagation);
    auto c = Container::Create(GetParam(), id_, cfg);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return ProcessResult{};
    container_ = *std::move(c);
    absl::Status s =
        container_->Install(Runfile("agent/testing/mount_probe_static"), "/bin/mount_probe");
    EXPECT_TRUE(s.ok()) << s;
    s = container_->Install(Runfile("agent/testing/xattr_probe_static"), "/bin/xattr_probe");
    EXPECT_TRUE(s.ok()) << s;
    if (before_run_) before_run_();
    ProcessResult r = container_->Run(absl::Seconds(60));
    EXPECT_FALSE(r.exit.timed_out) << r.Describe() << "\nagent:\n" << agent_->Stderr();
    return r;
  }

  // Every decision of `rule` for this container, once `count` are logged.
  std::vector<nlohmann::json> DecisionsOf(const std::string& rule, size_t count) {
    std::vector<nlohmann::json> found;
    agent_->WaitForDecisions(
        id_,
        [&](const std::vector<nlohmann::json>& ds) {
          found.clear();
          for (const auto& d : ds) {
            if (d.value("rule", "") == rule) found.push_back(d);
          }
          return found.size() >= count;
        },
        absl::Seconds(10));
    return found;
  }

  std::string Rootfs() const { return container_->rootfs(); }

  std::unique_ptr<Agent> agent_;
  std::unique_ptr<Container> container_;
  std::optional<uint32_t> userns_host_id_;
  // Empty: no capabilities at all; else runc's defaults and these.
  std::vector<std::string> add_capabilities_;
  std::function<void()> before_run_;  // after the rootfs is made, before the container runs
  std::string id_;
};

TEST_P(PrivilegedE2ETest, FreeAndUptimeShowTheContainersCgroup) {
  ProcessResult r = Run("sysinfo", "free; uptime");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe();
  // busybox free prints KiB: 256 MiB = 262144 KiB in the Mem: line's total
  // column. (Its used column subtracts buff/cache, which busybox reads
  // from /proc/meminfo, the host's: README says so.)
  EXPECT_THAT(r.out, testing::ContainsRegex("Mem: +262144")) << r.out;
  EXPECT_THAT(r.out, testing::ContainsRegex("Swap: +0 ")) << r.out;  // no swap accounting here
  // The container started seconds ago; the host has been up far longer.
  EXPECT_THAT(r.out, testing::ContainsRegex("up +[01] min")) << r.out;
  std::vector<nlohmann::json> ds = DecisionsOf("sysinfo-from-cgroup", 2);
  ASSERT_GE(ds.size(), 2u) << agent_->Stderr();
  for (const auto& d : ds) {
    EXPECT_EQ(d["action"], "sysinfo");
    EXPECT_EQ(d["backend"], "agent");
    EXPECT_THAT(d["result"].get<std::string>(), HasSubstr("totalram 268435456 ")) << d.dump();
  }
}

TEST_P(PrivilegedE2ETest, ListedDeviceIsCreatedAndWorksUnlistedIsEperm) {
  ProcessResult r = Run("mknod",
                        "mknod /tmp/null c 1 3 || exit 3; "
                        "echo lost > /tmp/null || exit 4; "
                        "echo size=$(wc -c < /tmp/null); "
                        "mknod /tmp/sda b 8 0; echo sda=$?; "
                        "mknod /tmp/mem c 1 1; echo mem=$?");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  EXPECT_THAT(r.out, HasSubstr("size=0"));  // it reads like /dev/null
  EXPECT_THAT(r.out, HasSubstr("sda=1"));
  EXPECT_THAT(r.out, HasSubstr("mem=1"));
  EXPECT_THAT(r.err, HasSubstr("Operation not permitted"));
  struct stat st;
  ASSERT_EQ(lstat((Rootfs() + "/tmp/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(major(st.st_rdev), 1u);
  EXPECT_EQ(minor(st.st_rdev), 3u);
  EXPECT_EQ(st.st_uid, 1000u);  // owned as the task would own it
  EXPECT_EQ(st.st_gid, 1000u);
  EXPECT_EQ(st.st_mode & 0777, 0644u);  // 0666 & ~umask 022
  EXPECT_NE(lstat((Rootfs() + "/tmp/sda").c_str(), &st), 0);
  EXPECT_NE(lstat((Rootfs() + "/tmp/mem").c_str(), &st), 0);
  std::vector<nlohmann::json> ds = DecisionsOf("harmless-devices", 3);
  ASSERT_EQ(ds.size(), 3u) << agent_->Stderr();
  EXPECT_THAT(ds[0]["result"].get<std::string>(), HasSubstr("0 (created c 1:3 mode 0644 uid 1000"));
  EXPECT_EQ(ds[0]["args"]["path"], "/tmp/null");
  EXPECT_EQ(ds[1]["result"], "EPERM (b 8:0 is not in the allow list)");
  EXPECT_EQ(ds[2]["result"], "EPERM (c 1:1 is not in the allow list)");
}

// Each line tries to get a node created outside the container's root, or
// through something other than a plain directory; each must fail inside.
TEST_P(PrivilegedE2ETest, EscapeAttemptsCreateNothingOutsideTheRoot) {
  const std::string tag = absl::StrCat("sa-priv-escape-", getpid(), "-", RuntimeName(GetParam()));
  const std::string script = absl::StrCat(
      "cd /tmp; ",
      // ".." above the root stays at the root: lands in the container's /tmp.
      "mknod /tmp/../../../../../../tmp/", tag, "-dd c 1 3; echo dd=$?; ",
      // An absolute symlink resolves in the container's root.
      "mkdir /tmp/d; ln -s /tmp/d /tmp/sl; mknod /tmp/sl/", tag, "-sl c 1 3; echo sl=$?; ",
      // The final name is never followed, dangling or not.
      "ln -s /tmp/", tag, "-target /tmp/dangling; mknod /tmp/dangling c 1 3; echo dangling=$?; ",
      // Magic links are refused (ELOOP), whoever they would name.
      "mknod /proc/self/cwd/", tag, "-pm c 1 3; echo pm=$?; ", "mknod /proc/1/root/tmp/", tag,
      "-pr c 1 3; echo pr=$?; ",
      // A FIFO or device at the name: EEXIST, nothing opened, nothing blocks.
      "mkfifo /tmp/fifo; mknod /tmp/fifo c 1 3; echo fifo=$?; ",
      "mknod /tmp/n c 1 3; mknod /tmp/n c 1 3; echo again=$?; ",
      // A device or FIFO in the path: not a directory.
      "mknod /tmp/n/x c 1 3; echo indev=$?; mknod /tmp/fifo/x c 1 3; echo infifo=$?; ",
      // A directory uid 1000 may not write: the task's own permission check.
      "mknod /etc/", tag, "-etc c 1 3; echo etc=$?; ",
      // Relative to the cwd.
      "mknod rel c 1 5; echo rel=$?");
  ProcessResult r = Run("escape", script);
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  for (const char* want : {"dd=0", "sl=0", "dangling=1", "pm=1", "pr=1", "fifo=1", "again=1",
                           "indev=1", "infifo=1", "etc=1", "rel=0"}) {
    EXPECT_THAT(r.out, HasSubstr(want)) << r.out << r.err;
  }
  struct stat st;
  // Inside the root, where the kernel would have put them.
  EXPECT_EQ(lstat((Rootfs() + "/tmp/" + tag + "-dd").c_str(), &st), 0);
  EXPECT_EQ(lstat((Rootfs() + "/tmp/d/" + tag + "-sl").c_str(), &st), 0);
  EXPECT_EQ(lstat((Rootfs() + "/tmp/rel").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  // Nowhere else: not on the host, not in the agent's cwd, not through the
  // dangling link, not in the container's /etc.
  for (const std::string& p :
       {"/tmp/" + tag + "-dd", "/tmp/" + tag + "-sl", "/tmp/" + tag + "-target",
        "/tmp/" + tag + "-pm", "/tmp/" + tag + "-pr", "/" + tag + "-pm",
        absl::StrCat("/proc/", agent_->pid(), "/cwd/", tag, "-pm"),
        Rootfs() + "/tmp/" + tag + "-target", Rootfs() + "/tmp/" + tag + "-pm",
        Rootfs() + "/tmp/" + tag + "-pr", Rootfs() + "/etc/" + tag + "-etc"}) {
    EXPECT_NE(lstat(p.c_str(), &st), 0) << p << " exists";
  }
  // The FIFO at the name is still a FIFO.
  ASSERT_EQ(lstat((Rootfs() + "/tmp/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

// The mount points of the host (the agent's mount namespace) under `dir`.
int HostMountsUnder(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() > 4 && absl::StartsWith(f[4], dir)) ++n;
  }
  return n;
}

// mount_probe is mount(2) itself (busybox mount refuses a non-root user
// before calling it). proc is mounted in the container's mount namespace
// and shows the container's pid namespace; ext4, a bind mount and an
// unlisted option are EPERM; nothing appears in the host's mount table.
TEST_P(PrivilegedE2ETest, MountProcInsideInvisibleOutside) {
  ProcessResult r =
      Run("mount",
          "mount_probe proc proc /mnt || exit 3; "
          "echo init=$(cat /mnt/1/comm); "
          "echo pids=$(ls -d /mnt/[0-9]* | wc -l); "
          "test -e /mnt/sysrq-trigger; echo sysrq=$?; test -e /mnt/sys; echo sys=$?; "
          "grep ' /mnt ' /proc/self/mountinfo; "
          "mount_probe ext4 /dev/x /tmp; echo ext4=$?; "
          "mount_probe none / /tmp 4096; echo bind=$?; "
          "mount_probe tmpfs t /tmp 0 size=1m,uid=0; echo uid=$?; "
          "mount_probe proc proc /mnt 32; echo remount=$?; "
          "mkdir /tmp/t && mount_probe tmpfs t /tmp/t 0 size=1m,mode=700; echo tmpfs=$?; "
          "grep ' /tmp/t ' /proc/self/mountinfo; "
          // busybox `unshare -m`'s first call: a propagation change with no
          // type (NULL) is EPERM for its flag, not EFAULT for the type.
          "mount_probe - none / 278528; echo private=$?");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  EXPECT_THAT(r.out, HasSubstr("init=sh"));
  // Only the container's processes (sh and the current child or two).
  EXPECT_THAT(r.out, testing::ContainsRegex("pids=[1-5]\n")) << r.out;
  EXPECT_THAT(r.out,
              testing::ContainsRegex(" /mnt [^\n]*nosuid,nodev[^\n]* - proc proc [^\n]*subset=pid"))
      << r.out;
  // subset=pid: no /proc/sys, no /proc/sysrq-trigger (no runtime masks on
  // a fresh procfs).
  EXPECT_THAT(r.out, HasSubstr("sysrq=1"));
  EXPECT_THAT(r.out, HasSubstr("sys=1"));
  EXPECT_THAT(r.out, HasSubstr("ext4=1"));  // EPERM
  EXPECT_THAT(r.out, HasSubstr("bind=1"));
  EXPECT_THAT(r.out, HasSubstr("uid=1"));
  EXPECT_THAT(r.out, HasSubstr("remount=1"));
  EXPECT_THAT(r.out, HasSubstr("tmpfs=0"));
  EXPECT_THAT(r.out, HasSubstr("private=1"));  // EPERM
  EXPECT_THAT(r.out, testing::ContainsRegex(
                         " /tmp/t [^\n]*nosuid,nodev[^\n]* - tmpfs tmpfs [^\n]*mode=700"))
      << r.out;
  // Invisible outside: the host has no mount under the container's rootfs
  // and the rootfs's /mnt is still the empty directory.
  EXPECT_EQ(HostMountsUnder(Rootfs()), 0);
  struct stat st;
  EXPECT_NE(lstat((Rootfs() + "/mnt/1").c_str(), &st), 0);
  std::vector<nlohmann::json> ds = DecisionsOf("virtual-mounts", 7);
  ASSERT_EQ(ds.size(), 7u) << agent_->Stderr();
  EXPECT_EQ(ds[0]["action"], "mount");
  EXPECT_EQ(ds[0]["backend"], "agent");
  EXPECT_EQ(ds[0]["args"]["path"], "/mnt");
  EXPECT_EQ(ds[0]["result"], "0 (mounted proc nosuid nodev subset=pid)");
  EXPECT_EQ(ds[1]["result"], "EPERM (fstype ext4 is not in the allow list)");
  EXPECT_EQ(ds[2]["result"], "EPERM (bind / -> /tmp matches no bind entry)");
  EXPECT_EQ(ds[3]["result"], "EPERM (option uid is not listed for tmpfs)");
  EXPECT_EQ(ds[4]["result"], "EPERM (flag MS_REMOUNT is not allowed)");
  EXPECT_EQ(ds[5]["result"], "0 (mounted tmpfs nosuid nodev size=1m mode=700)");
  EXPECT_EQ(ds[6]["result"], "EPERM (flag MS_REC is not allowed)");
}

// Targets that try to put the mount outside the container's root or on
// something that is not a directory; each fails or lands inside.
TEST_P(PrivilegedE2ETest, MountEscapeAttemptsStayInside) {
  const std::string script =
      "cd /tmp; mkdir -p /tmp/d; "
      // ".." above the root stays at the root: /tmp/d inside.
      "mount_probe proc proc /../../../../tmp/d; echo dd=$?; "
      "echo ddcount=$(grep -c ' /tmp/d ' /proc/self/mountinfo); "
      // An absolute symlink resolves in the container's root.
      "mkdir /tmp/e; ln -s /tmp/e /tmp/sl; mount_probe proc proc /tmp/sl; echo sl=$?; "
      "echo slcount=$(grep -c ' /tmp/e ' /proc/self/mountinfo); "
      // Magic links are refused (ELOOP = 40). /proc/self is ENOENT (2) to
      // the agent, which is not in the container's pid namespace.
      "mount_probe proc proc /proc/self/cwd; echo pm=$?; "
      "mount_probe proc proc /proc/1/root/tmp; echo pr=$?; "
      // A FIFO or device at the target: ENOTDIR (20), nothing opened, nothing blocks.
      "mkfifo /tmp/fifo; mount_probe proc proc /tmp/fifo; echo fifo=$?; "
      "mknod /tmp/n c 1 3; mount_probe proc proc /tmp/n; echo dev=$?; "
      // A dangling symlink: ENOENT (2).
      "ln -s /nonexistent /tmp/dangling; mount_probe proc proc /tmp/dangling; echo dangling=$?; "
      // Relative to the cwd.
      "mkdir /tmp/rel; mount_probe tmpfs t rel; echo rel=$?; "
      "echo relcount=$(grep -c ' /tmp/rel ' /proc/self/mountinfo)";
  ProcessResult r = Run("mount-escape", script);
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  for (const char* want : {"dd=0", "ddcount=1", "sl=0", "slcount=1", "pm=2", "pr=40", "fifo=20",
                           "dev=20", "dangling=2", "rel=0", "relcount=1"}) {
    EXPECT_THAT(r.out, HasSubstr(want)) << r.out << r.err;
  }
  EXPECT_EQ(HostMountsUnder(Rootfs()), 0);
  struct stat st;
  ASSERT_EQ(lstat((Rootfs() + "/tmp/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

// A container whose root mount is shared with the host's mounts: a mount on
// it would propagate out of the container, so the agent refuses it. crun
// honours rootfsPropagation "shared"; runc 1.1.5 makes the root private
// again before pivot_root, so there the root is not shared and the mount is
// made (and stays inside).
TEST_P(PrivilegedE2ETest, MountOnASharedMountIsRefused) {
  ProcessResult r = Run("mount-shared",
                        "echo rootshared=$(grep -c '^[0-9]* [0-9]* [^ ]* [^ ]* / [^ ]* shared:' "
                        "/proc/self/mountinfo); "
                        "mount_probe proc proc /mnt; echo mount=$?",
                        "shared");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  std::vector<nlohmann::json> ds = DecisionsOf("virtual-mounts", 1);
  ASSERT_EQ(ds.size(), 1u) << agent_->Stderr();
  if (GetParam() == Runtime::kCrun) {
    EXPECT_THAT(r.out, HasSubstr("rootshared=1")) << r.out;
    EXPECT_THAT(r.out, HasSubstr("mount=1")) << r.out;  // EPERM
    EXPECT_EQ(ds[0]["result"],
              "EPERM (the target's mount is shared: a mount would propagate to its peers)");
  } else {
    EXPECT_THAT(r.out, HasSubstr("rootshared=0")) << r.out;
    EXPECT_THAT(r.out, HasSubstr("mount=0")) << r.out;
  }
  EXPECT_EQ(HostMountsUnder(Rootfs()), 0);
}

// The value of `name` on `path` as the host sees it (lgetxattr, as root),
// or "<errno name>".
std::string HostXattr(const std::string& path, const std::string& name) {
  char buf[256];
  const ssize_t n = lgetxattr(path.c_str(), name.c_str(), buf, sizeof(buf));
  if (n < 0) return absl::StrCat("<", strerrorname_np(errno), ">");
  return std::string(buf, static_cast<size_t>(n));
}

// overlayfs's trusted.overlay.* names, set by the agent for a uid-1000
// task without CAP_SYS_ADMIN on what it owns; everything else refused.
TEST_P(PrivilegedE2ETest, SetxattrTrustedOverlayOnWhatTheContainerOwns) {
  ProcessResult r = Run("xattr",
                        "mkdir /tmp/upper /tmp/rel && cd /tmp || exit 3; "
                        "xattr_probe set trusted.overlay.opaque y /tmp/upper; echo opaque=$?; "
                        "xattr_probe set trusted.foo y /tmp/upper; echo foo=$?; "
                        "xattr_probe set trusted.overlay.opaque y /etc; echo etc=$?; "
                        "xattr_probe set trusted.overlay.opaque y /tmp; echo tmp=$?; "
                        "xattr_probe fset trusted.overlay.redirect r /tmp/upper; echo fset=$?; "
                        "ln -s /tmp/upper /tmp/lnk; xattr_probe lset trusted.overlay.origin o "
                        "/tmp/lnk; echo lset=$?; "
                        "xattr_probe set trusted.overlay.opaque x /tmp/upper 1; echo create=$?; "
                        "xattr_probe set trusted.overlay.nothing x /tmp/upper 2; echo replace=$?; "
                        "xattr_probe set trusted.overlay.big @65537 /tmp/upper; echo big=$?; "
                        "xattr_probe set trusted.overlay.opaque y rel; echo rel=$?; "
                        "xattr_probe set user.plain v /tmp/upper; echo user=$?; "
                        "xattr_probe fsetpath trusted.overlay.opaque y /tmp/upper; echo opath=$?; "
                        "xattr_probe set trusted.overlay.opaque y /tmp/upper 4; echo badflags=$?; "
                        "long=trusted.overlay.$(head -c 240 /dev/zero | tr '\\0' a); "
                        "xattr_probe set $long y /tmp/upper; echo longname=$?");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  // 0 done; 1 EPERM; 17 EEXIST; 61 ENODATA; 7 E2BIG; 9 EBADF; 22 EINVAL; 34 ERANGE.
  for (const char* want :
       {"opaque=0", "foo=1", "etc=1", "tmp=1", "fset=0", "lset=0", "create=17", "replace=61",
        "big=7", "rel=0", "user=0", "opath=9", "badflags=22", "longname=34"}) {
    EXPECT_THAT(r.out, HasSubstr(want)) << r.out << r.err;
  }
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/upper", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/upper", "trusted.overlay.redirect"), "r");
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/rel", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/upper", "trusted.foo"), "<ENODATA>");
  EXPECT_EQ(HostXattr(Rootfs() + "/etc", "trusted.overlay.opaque"), "<ENODATA>");
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp", "trusted.overlay.opaque"), "<ENODATA>");
  // lsetxattr: on the link itself, not on what it names.
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/lnk", "trusted.overlay.origin"), "o");
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/upper", "trusted.overlay.origin"), "<ENODATA>");
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/upper", "user.plain"), "v");  // the kernel's own call

  std::vector<nlohmann::json> ds = DecisionsOf("overlay-xattrs", 14);
  ASSERT_EQ(ds.size(), 14u) << agent_->Stderr();
  EXPECT_EQ(ds[0]["action"], "setxattr");
  EXPECT_EQ(ds[0]["backend"], "agent");
  EXPECT_EQ(ds[0]["args"]["path"], "/tmp/upper");
  EXPECT_THAT(ds[0]["result"].get<std::string>(),
              testing::MatchesRegex(
                  "0 \\(set trusted.overlay.opaque=\"y\" \\(1 bytes\\) on dir inode [0-9]+ uid "
                  "1000\\)"));
  EXPECT_EQ(ds[1]["result"], "EPERM (trusted.foo is not in allow_names)");
  EXPECT_EQ(ds[2]["result"], "EPERM (uid 1000 does not own the file (owner 0))");
  EXPECT_EQ(ds[3]["result"], "EPERM (uid 1000 does not own the file (owner 0))");
  EXPECT_THAT(ds[4]["result"].get<std::string>(),
              testing::MatchesRegex("0 \\(set trusted.overlay.redirect=\"r\" \\(1 bytes\\) on fd "
                                    "[0-9]+: dir inode [0-9]+ uid 1000\\)"));
  EXPECT_THAT(ds[5]["result"].get<std::string>(), HasSubstr(" on symlink inode "));
  EXPECT_THAT(ds[6]["result"].get<std::string>(), HasSubstr("EEXIST (trusted.overlay.opaque"));
  EXPECT_THAT(ds[6]["result"].get<std::string>(), HasSubstr("XATTR_CREATE"));
  EXPECT_EQ(ds[8]["result"], "E2BIG (name, size or flags)");
  EXPECT_EQ(ds[10]["result"], "continue (user.plain is not a trusted.* name)");
  EXPECT_EQ(ds[11]["result"], "EBADF (lookup)");
  EXPECT_EQ(ds[12]["result"], "EINVAL (name, size or flags)");
  EXPECT_EQ(ds[13]["result"], "ERANGE (name, size or flags)");
}

// Each line tries to get an attribute set outside the container's root or
// on something that is not a plain file or directory; 0 may succeed
// outside. The host directory is owned by uid 1000, so only where it is
// looked up stands between the task and it.
TEST_P(PrivilegedE2ETest, SetxattrEscapeAttemptsSetNothingOutsideTheRoot) {
  const std::string tag = absl::StrCat("sa-xattr-escape-", getpid(), "-", RuntimeName(GetParam()));
  const std::string host = "/tmp/" + tag;
  ASSERT_EQ(mkdir(host.c_str(), 0755), 0) << host;
  ASSERT_EQ(chown(host.c_str(), 1000, 1000), 0);
  const std::string name = "trusted.overlay.escape";
  const std::string script = absl::StrCat(
      "cd /tmp; set_=\"xattr_probe set ", name, " e\"; ",
      // An absolute symlink to the host path resolves in the container's root.
      "ln -s ", host, " /tmp/sl; $set_ /tmp/sl; echo sl=$?; ",
      // ".." above the root stays at the root.
      "$set_ /../../../..", host, "; echo dd=$?; ", "$set_ /tmp/../../..", host, "; echo dd2=$?; ",
      // Magic links: /proc/self is nobody to the agent (ENOENT, 2), /proc/1
      // is the container's init (ELOOP, 40).
      "$set_ /proc/self/root", host, "; echo ps=$?; ", "$set_ /proc/1/root/tmp; echo pr=$?; ",
      "$set_ /proc/1/cwd; echo pc=$?; ",
      // A FIFO or a device node (both owned by the task): EPERM, nothing
      // opened, nothing blocks; through an fd too.
      "mkfifo /tmp/fifo; $set_ /tmp/fifo; echo fifo=$?; ", "xattr_probe fset ", name,
      " e /tmp/fifo; echo ffifo=$?; ", "mknod /tmp/null c 1 3; $set_ /tmp/null; echo dev=$?; ",
      "xattr_probe fset ", name, " e /dev/null; echo fdev=$?; ",
      // lsetxattr on a symlink to the host path: the link itself (inside).
      "xattr_probe lset ", name, " e /tmp/sl; echo lsl=$?; ",
      // A dangling symlink: ENOENT.
      "ln -s /nonexistent /tmp/dangling; $set_ /tmp/dangling; echo dangling=$?");
  ProcessResult r = Run("xattr-escape", script);
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  for (const char* want : {"sl=2", "dd=2", "dd2=2", "ps=2", "pr=40", "pc=40", "fifo=1", "ffifo=1",
                           "dev=1", "fdev=1", "lsl=0", "dangling=2"}) {
    EXPECT_THAT(r.out, HasSubstr(want)) << r.out << r.err;
  }
  // 0 escapes: nothing on the host path, the host's /tmp and /, the
  // container's bundle or the agent's cwd.
  int escapes = 0;
  for (const std::string& p :
       {host, std::string("/tmp"), std::string("/"), Rootfs() + "/..", Rootfs(), Rootfs() + "/tmp",
        absl::StrCat("/proc/", agent_->pid(), "/cwd/")}) {
    if (HostXattr(p, name) != "<ENODATA>") {
      ++escapes;
      ADD_FAILURE() << p << " has " << name << " = " << HostXattr(p, name);
    }
  }
  EXPECT_EQ(escapes, 0);
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/sl", name), "e");  // lsetxattr: the link inside
  struct stat st;
  ASSERT_EQ(lstat((Rootfs() + "/tmp/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  rmdir(host.c_str());
}

// An fd on a file the task cannot reach from its root: the task (in a user
// namespace of its own, which uid 1000 may make) opens a directory it owns,
// chroots into a jail beside it and asks for fsetxattr on the inherited fd.
// The directory is the task's own, so only the reach check (its mount is
// not listed in the jailed task's mountinfo) refuses; the control, the same
// fd without the chroot, is set.
TEST_P(PrivilegedE2ETest, SetxattrOnAnFdOutsideTheTasksRootIsRefused) {
  ProcessResult r =
      Run("xattr-reach",
          "mkdir -p /tmp/jail/bin /tmp/outside /tmp/control && cp /bin/xattr_probe /tmp/jail/bin/ "
          "|| exit 3; "
          "unshare -r sh -c 'exec 3</tmp/control; xattr_probe fsetfd trusted.overlay.opaque y 3'; "
          "echo control=$?; "
          "unshare -r sh -c 'exec 3</tmp/outside; "
          "chroot /tmp/jail /bin/xattr_probe fsetfd trusted.overlay.opaque y 3'; echo jailed=$?");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  EXPECT_THAT(r.out, HasSubstr("control=0")) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("jailed=1")) << r.out << r.err;
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/control", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/outside", "trusted.overlay.opaque"), "<ENODATA>");
  std::vector<nlohmann::json> ds = DecisionsOf("overlay-xattrs", 2);
  ASSERT_EQ(ds.size(), 2u) << agent_->Stderr();
  EXPECT_EQ(ds[1]["result"], "EPERM (the file's mount is not one the task sees from its root)");
}

// Root in a user namespace (host ids 200000..), the case overlayfs in a
// container was made for: its own files are owned by its mapped root and
// get the attribute; a directory the host made in its rootfs (owned by the
// host's root, unmapped there) does not, nor does an unlisted name.
TEST_P(PrivilegedE2ETest, SetxattrForRootInAUserNamespace) {
  constexpr uint32_t kHostId = 200000;
  userns_host_id_ = kHostId;
  before_run_ = [this] { ASSERT_EQ(mkdir((Rootfs() + "/tmp/hostowned").c_str(), 0777), 0); };
  ProcessResult r = Run("xattr-userns",
                        "echo uid=$(id -u); mkdir /tmp/upper || exit 3; "
                        "xattr_probe set trusted.overlay.opaque y /tmp/upper; echo opaque=$?; "
                        "xattr_probe set trusted.overlay.opaque y /tmp/hostowned; echo host=$?; "
                        "xattr_probe set trusted.foo y /tmp/upper; echo foo=$?");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  for (const char* want : {"uid=0", "opaque=0", "host=1", "foo=1"}) {
    EXPECT_THAT(r.out, HasSubstr(want)) << r.out << r.err;
  }
  struct stat st;
  ASSERT_EQ(lstat((Rootfs() + "/tmp/upper").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kHostId);
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/upper", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(HostXattr(Rootfs() + "/tmp/hostowned", "trusted.overlay.opaque"), "<ENODATA>");
  std::vector<nlohmann::json> ds = DecisionsOf("overlay-xattrs", 3);
  ASSERT_EQ(ds.size(), 3u) << agent_->Stderr();
  EXPECT_THAT(ds[0]["result"].get<std::string>(), HasSubstr("on dir inode "));
  EXPECT_THAT(ds[0]["result"].get<std::string>(), HasSubstr(" uid 200000)"));
  EXPECT_EQ(ds[1]["result"], "EPERM (uid 200000 does not own the file (owner 0))");
  EXPECT_EQ(ds[2]["result"], "EPERM (trusted.foo is not in allow_names)");
}

// The host's mount table, one line per mount (mount ids and points).
std::string HostMountTable() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, out;
  while (std::getline(in, line)) out += line.substr(0, line.find(" - ")) + "\n";
  return out;
}

// mount_probe's flags.
constexpr char kBind[] = "4096";       // MS_BIND
constexpr char kRecBind[] = "20480";   // MS_BIND | MS_REC
constexpr char kRoRemount[] = "4129";  // MS_REMOUNT | MS_BIND | MS_RDONLY

// A bind whose resolved source and target match a bind entry is made in the
// container's mount namespace (nosuid, nodev), a bind remount makes it
// read-only, MS_REC carries the mounts beneath the source, and nothing of it
// shows on the host.
TEST_P(PrivilegedE2ETest, BindAllowedByTheGlobsWorksInsideInvisibleOutside) {
  const std::string before = HostMountTable();
  const std::string script = absl::StrCat(
      "mkdir -p /tmp/src/sub /tmp/dst && echo hello > /tmp/src/sub/f; ",
      "mount_probe none /tmp/src /mnt ", kBind, "; echo bind=$?; ", "echo read=$(cat /mnt/sub/f); ",
      "grep ' /mnt ' /proc/self/mountinfo; ", "mount_probe none none /mnt ", kRoRemount,
      "; echo remount=$?; ", "touch /mnt/new 2>/dev/null; echo write=$?; ",
      // A relative source from the cwd, onto a file.
      "cd /tmp/src && echo data > file && touch /tmp/dst/file; ",
      "mount_probe none file /tmp/dst/file ", kBind, "; echo file=$?; ",
      "echo filedata=$(cat /tmp/dst/file); ",
      // Mounts beneath the source: refused without MS_REC (the bind would
      // uncover them), carried with it.
      "mkdir -p /tmp/src/m /tmp/dst/r /tmp/dst/n && mount_probe tmpfs t /tmp/src/m 0 && "
      "echo under > /tmp/src/m/u; ",
      "mount_probe none /tmp/src /tmp/dst/n ", kBind, "; echo norec=$?; ",
      "mount_probe none /tmp/src /tmp/dst/r ", kRecBind, "; echo rec=$?; ",
      "echo recdata=$(cat /tmp/dst/r/m/u)");
  ProcessResult r = Run("bind", script);
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  for (const char* want : {"bind=0", "read=hello", "remount=0", "write=1", "file=0",
                           "filedata=data", "norec=1", "rec=0", "recdata=under"}) {
    EXPECT_THAT(r.out, HasSubstr(want)) << r.out << r.err;
  }
  EXPECT_THAT(r.out, testing::ContainsRegex(" /mnt [^\n]*nosuid,nodev")) << r.out;
  // Invisible outside: the host's mount table is unchanged, the rootfs's
  // /mnt is still the empty directory.
  EXPECT_EQ(HostMountTable(), before);
  EXPECT_EQ(HostMountsUnder(Rootfs()), 0);
  struct stat st;
  EXPECT_NE(lstat((Rootfs() + "/mnt/sub").c_str(), &st), 0);
  std::vector<nlohmann::json> ds = DecisionsOf("virtual-mounts", 6);
  ASSERT_EQ(ds.size(), 6u) << agent_->Stderr();
  EXPECT_EQ(ds[0]["result"], "0 (bound /tmp/src -> /mnt nosuid nodev)");
  EXPECT_EQ(ds[1]["result"], "0 (remounted /mnt ro nosuid nodev)");
  EXPECT_EQ(ds[2]["result"], "0 (bound /tmp/src/file -> /tmp/dst/file nosuid nodev)");
  EXPECT_EQ(ds[3]["result"], "0 (mounted tmpfs nosuid nodev)");
  EXPECT_THAT(ds[4]["result"].get<std::string>(),
              HasSubstr("EPERM (mounts lie beneath the source (/tmp/src/m)"));
  EXPECT_EQ(ds[5]["result"], "0 (bound /tmp/src -> /tmp/dst/r nosuid nodev rec)");
}

// Sources that are outside the globs, that reach a path outside them through
// a symlink, "..", /proc/self/root or /proc/1/root, or that are a FIFO or a
// device node: each is refused, nothing is mounted, no host file shows.
TEST_P(PrivilegedE2ETest, BindEscapeAttemptsMountNothing) {
  const std::string before = HostMountTable();
  const std::string script = absl::StrCat(
      "mkdir -p /tmp/src /tmp/dst/d; touch /tmp/dst/f; ", "mount_probe none /etc /mnt ", kBind,
      "; echo outside=$?; ", "ln -s /etc /tmp/src/abs; mount_probe none /tmp/src/abs /mnt ", kBind,
      "; echo abs=$?; ",
      "ln -s ../../../../../etc /tmp/src/rel; mount_probe none /tmp/src/rel /mnt ", kBind,
      "; echo rel=$?; ", "mount_probe none /tmp/src/../../../../../.. /mnt ", kBind,
      "; echo dotdot=$?; ", "mount_probe none /proc/self/root /mnt ", kBind, "; echo selfroot=$?; ",
      "mount_probe none /proc/1/root/etc /mnt ", kBind, "; echo initroot=$?; ",
      "ln -s /proc/1/root /tmp/src/pr; mount_probe none /tmp/src/pr /mnt ", kBind,
      "; echo linkroot=$?; ",
      // A target outside the globs, and one reached through a symlink.
      "mount_probe none /tmp/src /etc ", kBind, "; echo totarget=$?; ",
      "ln -s /etc /tmp/dst/etc; mount_probe none /tmp/src /tmp/dst/etc ", kBind,
      "; echo tolink=$?; ", "mkfifo /tmp/src/fifo; mount_probe none /tmp/src/fifo /tmp/dst/f ",
      kBind, "; echo fifo=$?; ",
      "mknod /tmp/src/null c 1 3; mount_probe none /tmp/src/null /tmp/dst/f ", kBind,
      "; echo dev=$?; ",
      "mkfifo /tmp/dst/fifo; echo x > /tmp/src/x; mount_probe none /tmp/src/x /tmp/dst/fifo ",
      kBind, "; echo tofifo=$?; ",
      "echo mounts=$(grep -c -e ' /mnt ' -e ' /tmp/dst' -e ' /etc ' /proc/self/mountinfo)");
  ProcessResult r = Run("bind-escape", script);
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  for (const char* want :
       {"outside=1", "abs=1", "rel=1", "dotdot=1", "selfroot=1", "initroot=1", "linkroot=1",
        "totarget=1", "tolink=1", "fifo=1", "dev=1", "tofifo=1", "mounts=0"}) {
    EXPECT_THAT(r.out, HasSubstr(want)) << r.out << r.err;
  }
  EXPECT_EQ(HostMountTable(), before);
  EXPECT_EQ(HostMountsUnder(Rootfs()), 0);
  struct stat st;
  ASSERT_EQ(lstat((Rootfs() + "/tmp/src/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  std::vector<nlohmann::json> ds = DecisionsOf("virtual-mounts", 12);
  ASSERT_EQ(ds.size(), 12u) << agent_->Stderr();
  const char* const want[] = {
      "EPERM (bind /etc -> /mnt matches no bind entry)",
      "EPERM (bind /etc -> /mnt matches no bind entry)",
      "EPERM (bind /etc -> /mnt matches no bind entry)",
      "EPERM (bind / -> /mnt matches no bind entry)",
      "EPERM (bind / -> /mnt matches no bind entry)",
      "EPERM (bind /etc -> /mnt matches no bind entry)",
      "EPERM (bind / -> /mnt matches no bind entry)",
      "EPERM (bind /tmp/src -> /etc matches no bind entry)",
      "EPERM (bind /tmp/src -> /etc matches no bind entry)",
      "EPERM (the source is a FIFO: only a directory or a regular file is bound)",
      "EPERM (the source is a character device: only a directory or a regular file is bound)",
      "EPERM (the target is a FIFO)",
  };
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(ds[i]["result"], want[i]) << i;
}

// A bind onto a shared mount would propagate to its peers (the host's):
// refused as the other mounts are (crun honours rootfsPropagation shared).
TEST_P(PrivilegedE2ETest, BindOnASharedMountIsRefused) {
  const std::string before = HostMountTable();
  ProcessResult r = Run(
      "bind-shared",
      absl::StrCat("mkdir -p /tmp/src; mount_probe none /tmp/src /mnt ", kBind, "; echo bind=$?"),
      "shared");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  std::vector<nlohmann::json> ds = DecisionsOf("virtual-mounts", 1);
  ASSERT_EQ(ds.size(), 1u) << agent_->Stderr();
  if (GetParam() == Runtime::kCrun) {
    EXPECT_THAT(r.out, HasSubstr("bind=1")) << r.out;
    EXPECT_EQ(ds[0]["result"],
              "EPERM (the target's mount is shared: a mount would propagate to its peers)");
  } else {
    EXPECT_THAT(r.out, HasSubstr("bind=0")) << r.out;  // runc 1.1.5: the root is private
  }
  EXPECT_EQ(HostMountTable(), before);
  EXPECT_EQ(HostMountsUnder(Rootfs()), 0);
}

// A non-recursive bind of a source with mounts beneath it is refused by
// path (the mountinfo read before the source is opened), so a peer process
// swaps (RENAME_EXCHANGE) the empty /tmp/src/a with a directory whose "m"
// is covered by a tmpfs, without pause, during 500 binds of /tmp/src/a:
// whichever directory is bound, the file under the tmpfs never shows at the
// target (the clone carries the mounts beneath it whatever the check saw).
TEST_P(PrivilegedE2ETest, BindSourceSwappedAfterTheMountCheckUncoversNothing) {
  const std::string before = HostMountTable();
  ProcessResult r = Run("bind-swap",
                        "mkdir -p /tmp/src/a /tmp/other/d/m /tmp/dst/t || exit 3; "
                        "echo covered > /tmp/other/d/m/secret; "
                        "mount_probe tmpfs t /tmp/other/d/m 0 size=1m || exit 4; "
                        "test -e /tmp/other/d/m/secret && exit 5; "
                        "mount_probe swaprace 500 /tmp/src/a /tmp/other/d /tmp/dst/t "
                        "/tmp/dst/t/m/secret");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  EXPECT_THAT(r.out, HasSubstr(" uncovered=0")) << r.out << r.err;
  // A race that never bound proves nothing.
  EXPECT_THAT(r.out, testing::ContainsRegex("bound=[1-9]")) << r.out << r.err;
  EXPECT_EQ(HostMountTable(), before);
  EXPECT_EQ(HostMountsUnder(Rootfs()), 0);
}

// Each mount the agent makes is the agent's work and memory, not the
// container's: a container stacking tmpfs mounts without end (the kernel's
// only bound is fs.mount-max, 100,000 per namespace) stops at the agent's
// cap on the mounts in its namespace (kMaxTaskMounts, 1000) with EPERM.
TEST_P(PrivilegedE2ETest, MountFloodStopsAtTheCap) {
  ProcessResult r = Run("mount-flood",
                        "mkdir /tmp/f || exit 3; mount_probe flood 1100 /tmp/f; "
                        "echo total=$(wc -l < /proc/self/mountinfo)");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  EXPECT_THAT(r.out, HasSubstr("error=EPERM")) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("total=1000\n")) << r.out << r.err;
}

// The same flood from mount namespaces the container's tasks make
// themselves. Root in the container's user namespace with CAP_SYS_ADMIN
// there can make mount namespaces of its own (unshare(CLONE_NEWNS)), each
// under the per-namespace cap; the container's count of the agent's mounts
// in namespaces other than its own stops it (kMaxNestedMounts: 1,000 over
// the container's life). The container's own namespace keeps its own cap.
TEST_P(PrivilegedE2ETest, MountFloodInNamespacesTheTaskMakesStopsAtTheContainersCap) {
  userns_host_id_ = 300000;
  add_capabilities_ = {"CAP_SYS_ADMIN"};
  ProcessResult r = Run("mount-flood-nested",
                        "mkdir /tmp/f || exit 3; "
                        "mount_probe mntnsflood 600 /tmp/f; mount_probe mntnsflood 600 /tmp/f; "
                        "mount_probe mntnsflood 1 /tmp/f; mount_probe flood 5 /tmp/f");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  EXPECT_THAT(r.out, HasSubstr("flood: mounted=600 error=none\nflood: mounted=400 error=EPERM\n"
                               "flood: mounted=0 error=EPERM\nflood: mounted=5 error=none\n"))
      << r.out << r.err;
}

// A uid-1000 container without capabilities can make a mount namespace only
// with a user namespace of its own; the agent's mounts there fail in the
// kernel (EPERM: measured, for tmpfs), so none lands outside the
// container's own namespace.
TEST_P(PrivilegedE2ETest, MountsInAUserNamespaceTheTaskMakesAreRefused) {
  ProcessResult r =
      Run("mount-userns-nested", "mkdir /tmp/f || exit 3; mount_probe nsflood 3 /tmp/f");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  EXPECT_THAT(r.out, HasSubstr("flood: mounted=0 error=EPERM\n")) << r.out << r.err;
}

// setxattr on files the container reaches but does not own: a hard link
// (made by the host in the image, and one the container tries itself) to a
// root-owned file, by path and by fd, and a directory it owns named
// through the shell's /proc/PID/fd magic link (ELOOP) or /proc/self/fd (the
// agent's thread is nobody in the container's /proc: ENOENT): nothing gets
// the attribute.
TEST_P(PrivilegedE2ETest, SetxattrThroughHardAndMagicLinksIsRefused) {
  before_run_ = [this] {
    std::ofstream(Rootfs() + "/tmp/hostfile") << "host\n";
    ASSERT_EQ(link((Rootfs() + "/tmp/hostfile").c_str(), (Rootfs() + "/tmp/hl").c_str()), 0);
  };
  ProcessResult r =
      Run("xattr-links",
          "x='xattr_probe set trusted.overlay.opaque y'; "
          "$x /tmp/hl; echo hl=$?; "
          "ln /etc/passwd /tmp/pw 2>/dev/null; $x /tmp/pw; echo pw=$?; "
          "exec 3</tmp/hl; xattr_probe fsetfd trusted.overlay.opaque y 3; echo fd=$?; "
          "mkdir /tmp/mine; exec 4</tmp/mine; $x /proc/$$/fd/4; echo magic=$?; "
          "$x /proc/self/fd/4; echo selffd=$?");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  for (const char* want : {"hl=1", "fd=1", "magic=40", "selffd=2"}) {
    EXPECT_THAT(r.out, HasSubstr(want)) << r.out << r.err;
  }
  EXPECT_THAT(r.out, testing::ContainsRegex("pw=[12]\n")) << r.out << r.err;  // EPERM or no link
  for (const char* f : {"/tmp/hostfile", "/etc/passwd", "/tmp/mine"}) {
    EXPECT_EQ(HostXattr(Rootfs() + f, "trusted.overlay.opaque"), "<ENODATA>") << f;
  }
}

// A peer process swaps (RENAME_EXCHANGE, without pause) a directory the
// container owns with a symlink while the agent works on the name: 300
// setxattr of /tmp/own (the symlink leads to /etc, root's) and 300 mknod
// under /tmp/pd (the symlink climbs "../../.." to /tmp/e2e-priv-flip-out,
// which is the host's /tmp if anything resolved outside the root). Each
// call gets the directory or the symlink, never more: /etc gets no
// attribute, no node lands outside the container's root.
TEST_P(PrivilegedE2ETest, SymlinkFlipsDuringTheCallStayInside) {
  const std::string host_out = "/tmp/e2e-priv-flip-out";
  rmdir(host_out.c_str());
  ProcessResult r =
      Run("flip",
          "mkdir /tmp/own /tmp/pd /tmp/e2e-priv-flip-out && ln -s /etc /tmp/lnk && "
          "ln -s ../../../../../../tmp/e2e-priv-flip-out /tmp/pl || exit 3; "
          "mount_probe swap /tmp/own /tmp/lnk & p=$!; ok=0; no=0; "
          "for i in $(seq 300); do "
          "if xattr_probe set trusted.overlay.opaque y /tmp/own >/dev/null; then ok=$((ok+1)); "
          "else no=$((no+1)); fi; done; kill $p; echo xattr ok=$ok no=$no; "
          "mount_probe swap /tmp/pd /tmp/pl & p=$!; ok=0; no=0; "
          "for i in $(seq 300); do "
          "if mknod /tmp/pd/n$i c 1 3 2>/dev/null; then ok=$((ok+1)); else no=$((no+1)); fi; done; "
          "kill $p; echo mknod ok=$ok no=$no");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  EXPECT_THAT(r.out, testing::ContainsRegex("xattr ok=[1-9]")) << r.out << r.err;
  EXPECT_THAT(r.out, testing::ContainsRegex("mknod ok=[1-9]")) << r.out << r.err;
  EXPECT_EQ(HostXattr(Rootfs() + "/etc", "trusted.overlay.opaque"), "<ENODATA>");
  struct stat st;
  EXPECT_NE(lstat(host_out.c_str(), &st), 0) << host_out << " exists on the host";
  // Every node the agent made is in the container's directory or at the
  // symlink's end inside the root (the swap leaves the directory at either
  // name).
  int nodes = 0;
  for (const char* d : {"/tmp/pd", "/tmp/pl", "/tmp/e2e-priv-flip-out"}) {
    DIR* dir = opendir((Rootfs() + d).c_str());  // a symlink on the host: not followed below
    if (dir == nullptr || lstat((Rootfs() + d).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      if (dir != nullptr) closedir(dir);
      continue;
    }
    while (struct dirent* e = readdir(dir)) nodes += e->d_name[0] == 'n';
    closedir(dir);
  }
  EXPECT_EQ(nodes, 300);
}

// A bind source named through /proc/self/fd (an fd on /etc, one inside the
// globs, the task's stdout), paths past PATH_MAX for mount, mknod and
// setxattr, and setxattr on a procfs directory the task owns (its own pid
// directory under a proc the agent mounted): only the bind the globs allow
// is made, by the path the fd resolves to.
TEST_P(PrivilegedE2ETest, FdLinksLongPathsAndProcfsAreRefused) {
  const std::string before = HostMountTable();
  ProcessResult r =
      Run("fd-long-proc",
          "mkdir -p /tmp/src/d /tmp/p && echo in > /tmp/src/d/f || exit 3; "
          "exec 3</etc; mount_probe none /proc/self/fd/3 /mnt 4096; echo fdetc=$?; "
          "mount_probe none /proc/self/fd/1 /mnt 4096; echo fdout=$?; "
          "exec 4</tmp/src/d; mount_probe none /proc/self/fd/4 /mnt 4096; echo fdsrc=$?; "
          "echo got=$(cat /mnt/f); "
          "l=$(printf '/x%.0s' $(seq 2100)); "
          "mount_probe tmpfs t $l 0 size=1m; echo longmount=$?; "
          "mknod $l c 1 3 2>/dev/null; echo longmknod=$?; "
          "xattr_probe set trusted.overlay.opaque y $l; echo longxattr=$?; "
          "mount_probe proc proc /tmp/p || exit 4; echo owner=$(stat -c %u /tmp/p/1); "
          "xattr_probe set trusted.overlay.opaque y /tmp/p/1; echo procxattr=$?");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  // Past PATH_MAX the call fails before the agent acts, as the kernel fails
  // it: ENAMETOOLONG (36; busybox mknod exits 1 on any error).
  for (const char* want : {"fdetc=1", "fdout=1", "fdsrc=0", "got=in", "longmount=36", "longmknod=1",
                           "longxattr=36", "owner=1000", "procxattr=1"}) {
    EXPECT_THAT(r.out, HasSubstr(want)) << r.out << r.err;
  }
  std::vector<nlohmann::json> ds = DecisionsOf("virtual-mounts", 5);
  ASSERT_EQ(ds.size(), 5u) << agent_->Stderr();
  EXPECT_EQ(ds[0]["result"], "EPERM (bind /etc -> /mnt matches no bind entry)");
  EXPECT_THAT(ds[1]["result"].get<std::string>(), HasSubstr("EPERM (bind pipe:["));
  EXPECT_EQ(ds[2]["result"], "0 (bound /tmp/src/d -> /mnt nosuid nodev)");
  EXPECT_EQ(ds[3]["result"], "ENAMETOOLONG (path unreadable)");
  std::vector<nlohmann::json> xs = DecisionsOf("overlay-xattrs", 2);
  ASSERT_EQ(xs.size(), 2u) << agent_->Stderr();
  EXPECT_EQ(xs[0]["result"], "ENAMETOOLONG (path unreadable)");
  EXPECT_EQ(xs[1]["result"], "EPERM (the file is on procfs or FUSE)");
  EXPECT_EQ(HostMountTable(), before);
  EXPECT_EQ(HostMountsUnder(Rootfs()), 0);
}

// The uid-1000 cases again as root in a user namespace (host ids 300000..,
// no capabilities): sysinfo shows the cgroup's limit, a listed node is made
// and owned by the container's root as mapped (300000 on the host, never
// the host's root), an unlisted one is EPERM, proc mounts inside and not
// outside, ext4 is EPERM; a bind allowed by the globs is made (the child
// joins the container's user namespace), /proc/1/root as its source is not.
TEST_P(PrivilegedE2ETest, RootInAUserNamespaceGetsTheSameAnswers) {
  constexpr uint32_t kHostId = 300000;
  userns_host_id_ = kHostId;
  const std::string before = HostMountTable();
  ProcessResult r = Run("userns",
                        "echo uid=$(id -u); free; uptime; "
                        "mknod /tmp/null c 1 3 || exit 3; echo lost > /tmp/null || exit 4; "
                        "echo size=$(wc -c < /tmp/null); echo owner=$(stat -c %u:%g /tmp/null); "
                        "mknod /tmp/sda b 8 0; echo sda=$?; "
                        "mount_probe proc proc /mnt; echo proc=$?; "
                        "echo init=$(cat /mnt/1/comm); test -e /mnt/sys; echo sys=$?; "
                        "grep ' /mnt ' /proc/self/mountinfo; "
                        "mkdir /tmp/e; mount_probe ext4 /dev/x /tmp/e; echo ext4=$?; "
                        "mkdir -p /tmp/src /tmp/dst/b && echo hi > /tmp/src/f; "
                        "mount_probe none /tmp/src /tmp/dst/b 4096; echo bind=$?; "
                        "echo bound=$(cat /tmp/dst/b/f); "
                        "mount_probe none /proc/1/root /tmp/dst/b 4096; echo initroot=$?");
  ASSERT_EQ(r.exit.exit_code, 0) << r.Describe() << "\nagent:\n" << agent_->Stderr();
  for (const char* want :
       {"uid=0", "size=0", "owner=0:0", "sda=1", "proc=0", "init=sh", "sys=1", "ext4=1"}) {
    EXPECT_THAT(r.out, HasSubstr(want)) << r.out << r.err;
  }
  EXPECT_THAT(r.out, testing::ContainsRegex("Mem: +262144")) << r.out;
  EXPECT_THAT(r.out, testing::ContainsRegex("up +[01] min")) << r.out;
  EXPECT_THAT(r.out, testing::ContainsRegex(" /mnt [^\n]*nosuid,nodev[^\n]* - proc proc "))
      << r.out;
  // The node as the host sees it: the container's root as mapped.
  struct stat st;
  ASSERT_EQ(lstat((Rootfs() + "/tmp/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(major(st.st_rdev), 1u);
  EXPECT_EQ(minor(st.st_rdev), 3u);
  EXPECT_EQ(st.st_uid, kHostId);
  EXPECT_EQ(st.st_gid, kHostId);
  EXPECT_NE(st.st_uid, 0u);
  EXPECT_NE(lstat((Rootfs() + "/tmp/sda").c_str(), &st), 0);
  // Invisible outside.
  EXPECT_EQ(HostMountTable(), before);
  EXPECT_EQ(HostMountsUnder(Rootfs()), 0);
  EXPECT_NE(lstat((Rootfs() + "/mnt/1").c_str(), &st), 0);
  std::vector<nlohmann::json> nodes = DecisionsOf("harmless-devices", 2);
  ASSERT_EQ(nodes.size(), 2u) << agent_->Stderr();
  EXPECT_THAT(nodes[0]["result"].get<std::string>(),
              HasSubstr("0 (created c 1:3 mode 0644 uid 300000 gid 300000)"));
  EXPECT_EQ(nodes[1]["result"], "EPERM (b 8:0 is not in the allow list)");
  std::vector<nlohmann::json> mounts = DecisionsOf("virtual-mounts", 4);
  ASSERT_EQ(mounts.size(), 4u) << agent_->Stderr();
  EXPECT_EQ(mounts[0]["result"], "0 (mounted proc nosuid nodev subset=pid)");
  EXPECT_EQ(mounts[1]["result"], "EPERM (fstype ext4 is not in the allow list)");
  EXPECT_EQ(mounts[2]["result"], "0 (bound /tmp/src -> /tmp/dst/b nosuid nodev)");
  EXPECT_EQ(mounts[3]["result"], "EPERM (bind / -> /tmp/dst/b matches no bind entry)");
  std::vector<nlohmann::json> infos = DecisionsOf("sysinfo-from-cgroup", 2);
  ASSERT_GE(infos.size(), 2u) << agent_->Stderr();
  EXPECT_THAT(infos[0]["result"].get<std::string>(), HasSubstr("totalram 268435456 "));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, PrivilegedE2ETest,
                         ::testing::Values(Runtime::kRunc, Runtime::kCrun),
                         [](const auto& info) { return std::string(RuntimeName(info.param)); });

}  // namespace
}  // namespace seccomp_agent::integration
