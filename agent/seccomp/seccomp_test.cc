// Checks the narrow kernel interface against the real kernel.
#include <fcntl.h>
#include <linux/audit.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "agent/common/fd.h"
#include "agent/common/status.h"
#include "agent/seccomp/syscall_names.h"
#include "agent/seccomp/task_memory.h"
#include "agent/seccomp/unotify.h"
#include "agent/testing/trapped_child.h"
#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

using testing::TrappedChild;

bool WaitReadable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

TEST(Unotify, RecvDecodeAndDeny) {
  auto child = TrappedChild::Spawn({"mkdir"}, [] {
    int rc = mkdir("/nonexistent-dir-for-test/abc", 0755);
    return (rc == -1 && errno == EPERM) ? 0 : 1;
  });
  ASSERT_TRUE(child.ok()) << child.status();
  child->Start();
  ASSERT_TRUE(WaitReadable(child->listener(), 5000));
  seccomp_notif n;
  UnotifyInterface& k = DefaultUnotify();
  ASSERT_TRUE(k.Recv(child->listener(), &n).ok());
  EXPECT_EQ(n.pid, static_cast<uint32_t>(child->pid()));
  EXPECT_EQ(n.data.arch, static_cast<uint32_t>(AUDIT_ARCH_X86_64));
  EXPECT_EQ(SyscallName(n.data.arch, n.data.nr), "mkdir");
  auto path = ReadTaskString(n.pid, n.data.args[0], 4096);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, "/nonexistent-dir-for-test/abc");
  EXPECT_TRUE(k.IdValid(child->listener(), n.id).ok());
  seccomp_notif_resp r{};
  r.id = n.id;
  r.error = -EPERM;
  ASSERT_TRUE(k.Send(child->listener(), r).ok());
  EXPECT_EQ(child->Wait(), 0);
}

TEST(Unotify, ContinueRunsTheRealSyscall) {
  char dir[] = "/tmp/unotify-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string target = std::string(dir) + "/made";
  auto child =
      TrappedChild::Spawn({"mkdir"}, [target] { return mkdir(target.c_str(), 0755) == 0 ? 0 : 1; });
  ASSERT_TRUE(child.ok()) << child.status();
  child->Start();
  ASSERT_TRUE(WaitReadable(child->listener(), 5000));
  seccomp_notif n;
  ASSERT_TRUE(DefaultUnotify().Recv(child->listener(), &n).ok());
  seccomp_notif_resp r{};
  r.id = n.id;
  r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  ASSERT_TRUE(DefaultUnotify().Send(child->listener(), r).ok());
  EXPECT_EQ(child->Wait(), 0);
  struct stat st;
  EXPECT_EQ(stat(target.c_str(), &st), 0);
  rmdir(target.c_str());
  rmdir(dir);
}

TEST(Unotify, SpoofedReturnValue) {
  auto child =
      TrappedChild::Spawn({"getppid"}, [] { return syscall(SYS_getppid) == 4242 ? 0 : 1; });
  ASSERT_TRUE(child.ok()) << child.status();
  child->Start();
  ASSERT_TRUE(WaitReadable(child->listener(), 5000));
  seccomp_notif n;
  ASSERT_TRUE(DefaultUnotify().Recv(child->listener(), &n).ok());
  seccomp_notif_resp r{};
  r.id = n.id;
  r.val = 4242;
  ASSERT_TRUE(DefaultUnotify().Send(child->listener(), r).ok());
  EXPECT_EQ(child->Wait(), 0);
}

TEST(Unotify, TaskKilledWhilePendingGivesEnoent) {
  auto child = TrappedChild::Spawn({"mkdir"}, [] { return mkdir("/x", 0) == 0 ? 0 : 1; });
  ASSERT_TRUE(child.ok()) << child.status();
  child->Start();
  ASSERT_TRUE(WaitReadable(child->listener(), 5000));
  seccomp_notif n;
  ASSERT_TRUE(DefaultUnotify().Recv(child->listener(), &n).ok());
  kill(child->pid(), SIGKILL);
  EXPECT_EQ(child->Wait(), 128 + SIGKILL);
  absl::Status valid = DefaultUnotify().IdValid(child->listener(), n.id);
  EXPECT_EQ(ErrnoOf(valid), ENOENT) << valid;
  seccomp_notif_resp r{};
  r.id = n.id;
  r.error = -EPERM;
  absl::Status sent = DefaultUnotify().Send(child->listener(), r);
  EXPECT_EQ(ErrnoOf(sent), ENOENT) << sent;
}

TEST(Unotify, CheckIsListener) {
  auto child = TrappedChild::Spawn({"mkdir"}, [] { return 0; });
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_TRUE(CheckIsListener(child->listener()).ok());
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  absl::Status s = CheckIsListener(r.get());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not a seccomp listener"), absl::string_view::npos) << s;
  EXPECT_FALSE(CheckIsListener(-1).ok());
}

TEST(Unotify, InjectOnStockKernelIsUnsupportedOrStale) {
  // On a kernel without the patch the ioctl is unknown (ENOTTY/EINVAL); with
  // it, a stale id answers ENOENT. Either way it must not succeed.
  auto child = TrappedChild::Spawn({"mkdir"}, [] { return 0; });
  ASSERT_TRUE(child.ok()) << child.status();
  seccomp_notif_inject inj{};
  inj.id = ~0ULL;
  inj.nr = SYS_openat;
  absl::Status s = DefaultUnotify().Inject(child->listener(), inj);
  ASSERT_FALSE(s.ok());
  int e = ErrnoOf(s);
  EXPECT_TRUE(e == ENOTTY || e == EINVAL || e == ENOENT) << s;
}

TEST(TaskMemory, ReadsStringAcrossPageBoundary) {
  // A string that starts 3 bytes before a page end and continues on the next.
  long page = sysconf(_SC_PAGESIZE);
  char* mem = static_cast<char*>(aligned_alloc(page, 2 * page));
  char* s = mem + page - 3;
  strcpy(s, "abcdefgh");
  auto got = ReadTaskString(getpid(), reinterpret_cast<uint64_t>(s), 4096);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "abcdefgh");
  free(mem);
}

TEST(TaskMemory, ErrorsAreReported) {
  EXPECT_EQ(ErrnoOf(ReadTaskString(getpid(), 0, 10).status()), EFAULT);
  std::string longs(100, 'x');
  EXPECT_EQ(
      ErrnoOf(ReadTaskString(getpid(), reinterpret_cast<uint64_t>(longs.c_str()), 10).status()),
      ENAMETOOLONG);
  auto bytes = ReadTaskBytes(getpid(), reinterpret_cast<uint64_t>(longs.data()), 100);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->size(), 100u);
  EXPECT_EQ(ErrnoOf(ReadTaskBytes(getpid(), 8, 4).status()), EFAULT);
}

TEST(SyscallNames, KnownAndUnknown) {
  EXPECT_EQ(SyscallName(AUDIT_ARCH_X86_64, SYS_openat), "openat");
  EXPECT_EQ(SyscallName(AUDIT_ARCH_I386, 39), "mkdir");  // i386 mkdir is 39
  EXPECT_EQ(SyscallName(AUDIT_ARCH_X86_64, 100000), "syscall_100000");
  EXPECT_TRUE(IsNativeArch(AUDIT_ARCH_X86_64));
  EXPECT_FALSE(IsNativeArch(AUDIT_ARCH_I386));
}

}  // namespace
}  // namespace seccomp_agent
