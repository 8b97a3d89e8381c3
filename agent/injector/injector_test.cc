// The injector's selection, probing and reply logic against a gmock of the
// kernel interface, plus the emulation-only behaviours on a real child
// (length-changing writes, open(2) redirects) that the kernel backend
// cannot share with it (see injector.h).
#include "agent/injector/injector.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/audit.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "agent/common/status.h"
#include "agent/injector/replay_cache.h"
#include "agent/injector/task_context.h"
#include "agent/testing/trapped_child.h"
#include "agent/testing/wait.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace seccomp_agent::injector {
namespace {

using ::testing::_;
using ::testing::AllOf;
using ::testing::Field;
using ::testing::InSequence;
using ::testing::Return;

class MockUnotify : public UnotifyInterface {
 public:
  MOCK_METHOD(absl::Status, Recv, (int, struct seccomp_notif*), (override));
  MOCK_METHOD(absl::Status, Send, (int, const struct seccomp_notif_resp&), (override));
  MOCK_METHOD(absl::Status, IdValid, (int, uint64_t), (override));
  MOCK_METHOD(absl::StatusOr<int>, AddFd, (int, const struct seccomp_notif_addfd&), (override));
  MOCK_METHOD(absl::Status, Inject, (int, const struct seccomp_notif_inject&), (override));
  MOCK_METHOD(absl::Status, SetFlags, (int, uint64_t), (override));
};

constexpr int kListener = 42;
constexpr uint64_t kStale = ~0ULL;

seccomp_notif Notif(int nr, uint64_t id = 7) {
  seccomp_notif n;
  memset(&n, 0, sizeof(n));
  n.id = id;
  n.pid = 999999;
  n.data.nr = nr;
  n.data.arch = AUDIT_ARCH_X86_64;
  return n;
}

MATCHER_P(InjectId, id, "") { return arg.id == id; }

absl::Status Err(int e) { return ErrnoStatus(e, "ioctl"); }

void ExpectProbe(MockUnotify& u, int err) {
  EXPECT_CALL(u, Inject(kListener, InjectId(kStale))).WillOnce(Return(Err(err)));
}

TEST(Probe, EnoentMeansSupported) {
  MockUnotify u;
  EXPECT_CALL(u, Inject(kListener, AllOf(Field(&seccomp_notif_inject::id, kStale),
                                         Field(&seccomp_notif_inject::args_in_buf_mask, 2u),
                                         Field(&seccomp_notif_inject::nr,
                                               static_cast<uint64_t>(__NR_openat)))))
      .WillOnce(Return(Err(ENOENT)));
  auto p = ProbeKernelInjection(u, kListener);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(*p);
}

TEST(Probe, EnottyAndEinvalMeanUnsupported) {
  for (int e : {ENOTTY, EINVAL}) {
    MockUnotify u;
    ExpectProbe(u, e);
    auto p = ProbeKernelInjection(u, kListener);
    ASSERT_TRUE(p.ok());
    EXPECT_FALSE(*p);
  }
}

TEST(Probe, OtherErrorsAreErrors) {
  MockUnotify u;
  ExpectProbe(u, EPERM);
  EXPECT_FALSE(ProbeKernelInjection(u, kListener).ok());
}

TEST(Injector, ProbesOnceOnTheFirstListenerThenInjectsAndSendsInjected) {
  MockUnotify u;
  InjectorOptions o;
  Injector inj(o, u);
  {
    InSequence seq;
    ExpectProbe(u, ENOENT);
    for (uint64_t id : {7u, 8u}) {
      EXPECT_CALL(u, Inject(kListener, InjectId(id))).WillOnce(Return(absl::OkStatus()));
      EXPECT_CALL(
          u, Send(kListener,
                  AllOf(Field(&seccomp_notif_resp::id, id),
                        Field(&seccomp_notif_resp::flags,
                              static_cast<uint32_t>(SECCOMP_USER_NOTIF_FLAG_INJECTED)),
                        Field(&seccomp_notif_resp::val, 0), Field(&seccomp_notif_resp::error, 0))))
          .WillOnce(Return(absl::OkStatus()));
    }
  }
  for (uint64_t id : {7u, 8u}) {
    auto out = inj.Inject(kListener, Notif(__NR_write, id), Substitute::Write(1, "abc", 3));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->backend, kBackendKernel);
    EXPECT_EQ(out->result, "injected");
  }
  EXPECT_TRUE(inj.kernel_supported());
  EXPECT_EQ(inj.default_backend(), kBackendKernel);
}

TEST(Injector, AnOddProbeErrorIsRetriedOnTheNextCall) {
  MockUnotify u;
  InjectorOptions o;
  o.strict = true;
  Injector inj(o, u);
  {
    InSequence seq;
    ExpectProbe(u, EBADF);  // no definite answer: refuse this one, ask again
    EXPECT_CALL(u, Send(kListener, Field(&seccomp_notif_resp::error, -EPERM)))
        .WillOnce(Return(absl::OkStatus()));
    ExpectProbe(u, ENOENT);
    EXPECT_CALL(u, Inject(kListener, InjectId(8u))).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(u, Send(kListener, Field(&seccomp_notif_resp::id, 8u)))
        .WillOnce(Return(absl::OkStatus()));
  }
  auto out = inj.Inject(kListener, Notif(__NR_write), Substitute::Write(1, "abc", 3));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->backend, kBackendStrictRefused);
  out = inj.Inject(kListener, Notif(__NR_write, 8), Substitute::Write(1, "abc", 3));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->backend, kBackendKernel);
}

TEST(Injector, ValidationFailureMakesNoIoctl) {
  MockUnotify u;
  Injector inj(InjectorOptions{}, u);
  EXPECT_CALL(u, Inject(_, _)).Times(0);
  EXPECT_CALL(u, Send(_, _)).Times(0);
  auto out = inj.Inject(kListener, Notif(__NR_openat), Substitute::Write(1, "abc", 3));
  EXPECT_EQ(ErrnoOf(out.status()), ESRCH);
  Substitute s = Substitute::Write(1, "abc", 3);
  s.args[2] = 9;
  out = inj.Inject(kListener, Notif(__NR_write), s);
  EXPECT_EQ(ErrnoOf(out.status()), EINVAL);
}

void ExpectRefusal(MockUnotify& u, int err) {
  EXPECT_CALL(u, Inject(kListener, InjectId(7u))).Times(0);
  EXPECT_CALL(u, Send(kListener, AllOf(Field(&seccomp_notif_resp::error, -err),
                                       Field(&seccomp_notif_resp::flags, 0u))))
      .WillOnce(Return(absl::OkStatus()));
}

TEST(Injector, KernelModeWithoutKernelSupportRefuses) {
  MockUnotify u;
  InjectorOptions o;
  o.mode = Mode::kKernel;
  o.strict_errno = EACCES;
  Injector inj(o, u);
  ExpectProbe(u, EINVAL);
  ExpectRefusal(u, EACCES);
  auto out = inj.Inject(kListener, Notif(__NR_write), Substitute::Write(1, "abc", 3));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->backend, kBackendStrictRefused);
  EXPECT_EQ(out->result, "EACCES");
  EXPECT_EQ(inj.default_backend(), kBackendStrictRefused);
}

TEST(Injector, AutoStrictWithoutKernelSupportRefuses) {
  MockUnotify u;
  InjectorOptions o;
  o.strict = true;
  Injector inj(o, u);
  ExpectProbe(u, ENOTTY);
  ExpectRefusal(u, EPERM);
  auto out = inj.Inject(kListener, Notif(__NR_write), Substitute::Write(1, "abc", 3));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->backend, kBackendStrictRefused);
}

TEST(Injector, EmulateStrictRefusesEvenWithKernelSupport) {
  MockUnotify u;
  InjectorOptions o;
  o.mode = Mode::kEmulate;
  o.strict = true;
  Injector inj(o, u);
  ExpectProbe(u, ENOENT);
  ExpectRefusal(u, EPERM);
  auto out = inj.Inject(kListener, Notif(__NR_write), Substitute::Write(1, "abc", 3));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->backend, kBackendStrictRefused);
}

TEST(Injector, OpenSyscallIsNeverInjectedByTheKernel) {
  MockUnotify u;
  InjectorOptions o;
  o.mode = Mode::kKernel;
  Injector inj(o, u);
  ExpectProbe(u, ENOENT);
  ExpectRefusal(u, EPERM);
  auto out = inj.Inject(kListener, Notif(__NR_open), Substitute::Open("/x", O_RDONLY, 0));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->backend, kBackendStrictRefused);
}

TEST(Injector, LengthChangingWriteIsNotInjectedByTheKernel) {
  MockUnotify u;
  InjectorOptions o;
  o.mode = Mode::kKernel;
  Injector inj(o, u);
  ExpectProbe(u, ENOENT);
  ExpectRefusal(u, EPERM);
  auto out = inj.Inject(kListener, Notif(__NR_write), Substitute::Write(1, "[REDACTED]", 6));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->backend, kBackendStrictRefused);
}

TEST(Injector, KernelTaskGone) {
  MockUnotify u;
  Injector inj(InjectorOptions{}, u);
  ExpectProbe(u, ENOENT);
  // INJECT finds no such id: no SEND.
  EXPECT_CALL(u, Inject(kListener, InjectId(7u))).WillOnce(Return(Err(ENOENT)));
  auto out = inj.Inject(kListener, Notif(__NR_write), Substitute::Write(1, "abc", 3));
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->task_gone);
  // Interrupted between INJECT and SEND: the kernel dropped the record.
  EXPECT_CALL(u, Inject(kListener, InjectId(8u))).WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(u, Send(kListener, _)).WillOnce(Return(Err(ENOENT)));
  out = inj.Inject(kListener, Notif(__NR_write, 8), Substitute::Write(1, "abc", 3));
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->task_gone);
  EXPECT_EQ(out->backend, kBackendKernel);
}

TEST(Injector, KernelErrorsAreReturnedWithoutAReply) {
  MockUnotify u;
  Injector inj(InjectorOptions{}, u);
  ExpectProbe(u, ENOENT);
  EXPECT_CALL(u, Inject(kListener, InjectId(7u))).WillOnce(Return(Err(EINPROGRESS)));
  EXPECT_CALL(u, Send(_, _)).Times(0);
  auto out = inj.Inject(kListener, Notif(__NR_write), Substitute::Write(1, "abc", 3));
  EXPECT_EQ(ErrnoOf(out.status()), EINPROGRESS);
}

TEST(ReplayCache, HandsOutOnceAndKeysOnTheCall) {
  ReplayCache c(absl::Seconds(5));
  seccomp_notif n = Notif(__NR_write);
  n.data.args[0] = 3;
  Substitute s = Substitute::Write(3, "abc", 3);
  c.Remember(ReplayCache::Key(n, s), ReplayResult{3, 0, nullptr, 0});
  seccomp_notif other = n;
  other.pid = 1234;
  EXPECT_FALSE(c.Take(ReplayCache::Key(other, s)).has_value());
  EXPECT_FALSE(c.Take(ReplayCache::Key(n, Substitute::Write(3, "abd", 3))).has_value());
  n.id = 99;  // a restarted call has a new id: not part of the key
  auto r = c.Take(ReplayCache::Key(n, s));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->value, 3);
  EXPECT_FALSE(c.Take(ReplayCache::Key(n, s)).has_value());
}

TEST(ReplayCache, ExpiresAndCanBeOff) {
  absl::Time now = absl::UnixEpoch();
  ReplayCache c(absl::Milliseconds(20), [&now] { return now; });
  seccomp_notif n = Notif(__NR_write);
  Substitute s = Substitute::Write(3, "abc", 3);
  c.Remember(ReplayCache::Key(n, s), ReplayResult{3, 0, nullptr, 0});
  now += absl::Milliseconds(20);  // the window's last moment: still there
  EXPECT_EQ(c.size(), 1u);
  now += absl::Milliseconds(1);
  EXPECT_FALSE(c.Take(ReplayCache::Key(n, s)).has_value());
  EXPECT_EQ(c.size(), 0u);
  ReplayCache off(absl::ZeroDuration());
  off.Remember(ReplayCache::Key(n, s), ReplayResult{3, 0, nullptr, 0});
  EXPECT_EQ(off.size(), 0u);
}

// A restarted call can reach a second worker while the interrupted one is
// still between its side effect and Remember (integration:faults_e2e_test
// SaRestartStormTest saw writes twice): the second claim of the same key
// waits, then finds the result; other keys do not wait.
TEST(ReplayCache, SecondClaimOfTheSameCallWaitsForTheFirst) {
  ReplayCache c(absl::Seconds(5));
  seccomp_notif n = Notif(__NR_write);
  Substitute s = Substitute::Write(3, "abc", 3);
  const std::string key = ReplayCache::Key(n, s);
  seccomp_notif other = n;
  other.pid = 1234;
  std::atomic<bool> second_has_result{false}, second_done{false};
  std::thread second;
  {
    ReplayCache::Claim first(c, key);
    second = std::thread([&] {
      ReplayCache::Claim again(c, key);
      second_has_result = c.Take(key).has_value();
      second_done = true;
    });
    { ReplayCache::Claim unrelated(c, ReplayCache::Key(other, s)); }  // no wait
    ASSERT_TRUE(testing::WaitFor([&] { return c.waiting_claims() == 1 || second_done.load(); }));
    EXPECT_FALSE(second_done.load()) << "the second claim did not wait";
    c.Remember(key, ReplayResult{3, 0, nullptr, 0});  // the side effect ran, the reply was lost
  }
  second.join();
  EXPECT_TRUE(second_has_result.load());
}

// ------------------------------------------- emulation-only, real child

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Shared {
  int64_t ret[4];
  int err[4];
  char data[64];
};

// Memory the trapped child writes its results into (MAP_FAILED on error).
Shared* MapShared() {
  return static_cast<Shared*>(
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
}

TEST(Emulation, RedactedWriteReportsTheTasksCountOnce) {
  char dir[] = "/tmp/injector-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string file = std::string(dir) + "/log";
  Shared* sh = MapShared();
  ASSERT_NE(sh, MAP_FAILED);
  auto child = testing::TrappedChild::Spawn({"write"}, [sh, file] {
    int fd = static_cast<int>(syscall(SYS_open, file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
    const char msg[] = "token=abc123 done\n";
    sh->ret[0] = syscall(SYS_write, fd, msg, sizeof(msg) - 1);
    sh->ret[1] = lseek(fd, 0, SEEK_CUR);
    return 0;
  });
  ASSERT_TRUE(child.ok()) << child.status();
  child->Start();
  auto n = child->RecvNotification();
  ASSERT_TRUE(n.ok()) << n.status();
  // What the router plans for a redaction of "token=[a-z0-9]+": a shorter
  // substitute, the task's own count.
  Substitute sub =
      Substitute::Write(static_cast<int>(n->data.args[0]), "[REDACTED] done\n", n->data.args[2]);
  InjectorOptions o;  // auto: no kernel support on the host, or a length change
  Injector inj(o, DefaultUnotify());
  auto out = inj.Inject(child->listener(), *n, sub);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->backend, kBackendEmulation);
  EXPECT_EQ(out->result, "18");
  EXPECT_EQ(child->Wait(), 0);
  EXPECT_EQ(sh->ret[0], 18);  // the task's count, not len("[REDACTED] done\n")
  EXPECT_EQ(sh->ret[1], 16);  // the file position is the real one
  EXPECT_EQ(ReadFile(file), "[REDACTED] done\n");
  munmap(sh, sizeof(Shared));
  (void)system((std::string("rm -rf ") + dir).c_str());
}

TEST(Emulation, OpenSyscallRedirectIsEmulatedInAutoMode) {
  char dir[] = "/tmp/injector-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string target = std::string(dir) + "/target";
  { std::ofstream(target) << "TARGET"; }
  Shared* sh = MapShared();
  ASSERT_NE(sh, MAP_FAILED);
  auto child = testing::TrappedChild::Spawn({"open"}, [sh] {
    int fd = static_cast<int>(syscall(SYS_open, "/etc/requested", O_RDONLY));
    sh->ret[0] = fd;
    sh->err[0] = fd < 0 ? errno : 0;
    if (fd >= 0) sh->ret[1] = read(fd, sh->data, sizeof(sh->data) - 1);
    if (fd >= 0) sh->ret[2] = fcntl(fd, F_GETFD);
    return 0;
  });
  ASSERT_TRUE(child.ok()) << child.status();
  child->Start();
  auto n = child->RecvNotification();
  ASSERT_TRUE(n.ok()) << n.status();
  // What the router plans for redirect_open {"/etc/requested": target} of
  // an open(2): the task's flags and mode, the new path.
  Substitute sub = Substitute::Open(target, static_cast<int>(n->data.args[1]),
                                    static_cast<mode_t>(n->data.args[2]));
  Injector inj(InjectorOptions{}, DefaultUnotify());
  auto out = inj.Inject(child->listener(), *n, sub);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->backend, kBackendEmulation);
  EXPECT_EQ(child->Wait(), 0);
  EXPECT_GE(sh->ret[0], 0) << strerror(sh->err[0]);
  EXPECT_EQ(std::string(sh->data), "TARGET");
  EXPECT_EQ(sh->ret[2] & FD_CLOEXEC, 0);
  munmap(sh, sizeof(Shared));
  (void)system((std::string("rm -rf ") + dir).c_str());
}

// ------------------------------------------------------------ RunAsTask

// What RunAsTask must leave exactly as it found it in the calling thread.
struct ThreadState {
  std::string root, cwd;
  ino_t root_ino = 0, cwd_ino = 0;
  mode_t umask = 0;
  uid_t fsuid = 0;
  gid_t fsgid = 0;
  std::vector<gid_t> groups;
  uint64_t cap_eff = 0;
  bool operator==(const ThreadState& o) const {
    return root == o.root && cwd == o.cwd && root_ino == o.root_ino && cwd_ino == o.cwd_ino &&
           umask == o.umask && fsuid == o.fsuid && fsgid == o.fsgid && groups == o.groups &&
           cap_eff == o.cap_eff;
  }
};

std::string Link(const char* path) {
  char buf[4096];
  ssize_t n = readlink(path, buf, sizeof(buf));
  return n < 0 ? std::string("?") : std::string(buf, static_cast<size_t>(n));
}

ino_t DirIno(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

ThreadState CurrentThreadState() {
  ThreadState s;
  s.root_ino = DirIno("/");
  s.cwd_ino = DirIno(".");
  s.root = Link("/proc/thread-self/root");
  s.cwd = Link("/proc/thread-self/cwd");
  s.umask = umask(0);
  umask(s.umask);
  s.fsuid = static_cast<uid_t>(syscall(SYS_setfsuid, -1));
  s.fsgid = static_cast<gid_t>(syscall(SYS_setfsgid, -1));
  s.groups.resize(static_cast<size_t>(syscall(SYS_getgroups, 0, nullptr)));
  s.groups.resize(static_cast<size_t>(syscall(SYS_getgroups, s.groups.size(), s.groups.data())));
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2] = {};
  syscall(SYS_capget, &hdr, d);
  s.cap_eff = d[0].effective | (uint64_t{d[1].effective} << 32);
  return s;
}

TEST(RunAsTask, RunsInTheTasksContextAndRestoresTheCallingThread) {
  ASSERT_EQ(geteuid(), 0u) << "needs root (chroot, setgroups)";
  char tmpl[] = "/tmp/runastask.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_EQ(mkdir((dir + "/sub").c_str(), 0755), 0);
  UniqueFd root(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  UniqueFd cwd(open((dir + "/sub").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root && cwd);

  TaskCreds creds;
  creds.fsuid = 65534;
  creds.fsgid = 65534;
  creds.groups = {65534, 12345};
  creds.cap_eff = 0;
  creds.umask = 077;
  const ThreadState before = CurrentThreadState();
  for (int round = 0; round < 3; ++round) {  // again: the thread is reusable
    ThreadState inside;
    bool ran = false;
    absl::Status s = RunAsTask(creds, FsContext{root.get(), cwd.get()}, [&] {
      ran = true;
      inside = CurrentThreadState();
    });
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_TRUE(ran);
    // chroot'ed into the task's root (no /proc there: compare inodes).
    EXPECT_EQ(inside.root_ino, DirIno(dir));
    EXPECT_EQ(inside.cwd_ino, DirIno(dir + "/sub"));
    EXPECT_EQ(inside.umask, 077u);
    EXPECT_EQ(inside.fsuid, 65534u);
    EXPECT_EQ(inside.fsgid, 65534u);
    EXPECT_EQ(inside.groups, (std::vector<gid_t>{12345, 65534}));  // the kernel sorts
    EXPECT_EQ(inside.cap_eff, 0u);
    EXPECT_TRUE(CurrentThreadState() == before) << "round " << round;
  }

  // A setup that fails half-way (the cwd is not a directory) runs nothing
  // and still restores the thread.
  UniqueFd file(open((dir + "/f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(file);
  bool ran = false;
  absl::Status s = RunAsTask(creds, FsContext{root.get(), file.get()}, [&] { ran = true; });
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(ran);
  EXPECT_TRUE(CurrentThreadState() == before);

  // Another thread never sees the task's context, not even one this thread
  // created after it first unshared (it shares this thread's fs_struct
  // until the next call unshares again).
  std::mutex mu;
  std::condition_variable cv;
  int step = 0;
  ThreadState other_inside;
  std::thread other([&] {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return step == 1; });
    other_inside = CurrentThreadState();
    step = 2;
    cv.notify_all();
  });
  ASSERT_TRUE(RunAsTask(creds, FsContext{root.get(), cwd.get()}, [&] {
                std::unique_lock<std::mutex> l(mu);
                step = 1;
                cv.notify_all();
                cv.wait(l, [&] { return step == 2; });
              }).ok());
  other.join();
  EXPECT_TRUE(other_inside == before) << other_inside.root << " " << other_inside.cwd;
  EXPECT_TRUE(CurrentThreadState() == before);

  unlink((dir + "/f").c_str());
  rmdir((dir + "/sub").c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace seccomp_agent::injector
