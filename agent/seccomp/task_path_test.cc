// ResolveTaskPath against a real task: a child chroot'ed into a scratch
// root with its own procfs mount, an O_PATH fd and a cwd, like a container
// that shares the host pid namespace. Every alias of /forbidden/x that
// issue 12 item 4 listed must resolve to /forbidden/x.
#include "agent/seccomp/task_path.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/common/status.h"
#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

constexpr int kDirFd = 50;  // the child's O_PATH fd on /forbidden

class TaskPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/task-path-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    for (const char* d : {"/forbidden", "/tmp", "/proc", "/a", "/a/b"}) {
      ASSERT_EQ(mkdir((root_ + d).c_str(), 0755), 0) << d;
    }
    ASSERT_EQ(symlink("/forbidden", (root_ + "/link").c_str()), 0);
    ASSERT_EQ(symlink("forbidden", (root_ + "/rel").c_str()), 0);
    ASSERT_EQ(symlink("../../forbidden", (root_ + "/a/b/up").c_str()), 0);
    ASSERT_EQ(symlink("/loop2", (root_ + "/loop1").c_str()), 0);
    ASSERT_EQ(symlink("/loop1", (root_ + "/loop2").c_str()), 0);
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(hold_), 0);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      close(ready[0]);
      close(hold_[1]);
      const std::string proc = root_ + "/proc";
      if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) ||
          mount("proc", proc.c_str(), "proc", 0, nullptr) != 0 || chroot(root_.c_str()) != 0 ||
          chdir("/tmp") != 0) {
        _exit(1);
      }
      int fd = open("/forbidden", O_PATH | O_DIRECTORY);
      if (fd < 0 || dup2(fd, kDirFd) < 0) _exit(2);
      char c = 'r';
      if (write(ready[1], &c, 1) != 1) _exit(3);
      (void)!read(hold_[0], &c, 1);  // until the test is done
      _exit(0);
    }
    close(ready[1]);
    close(hold_[0]);
    char c;
    ASSERT_EQ(read(ready[0], &c, 1), 1) << "the child could not set up its root";
    close(ready[0]);
  }
  void TearDown() override {
    if (pid_ > 0) {
      close(hold_[1]);
      int st;
      waitpid(pid_, &st, 0);
    }
    (void)system(("rm -rf '" + root_ + "'").c_str());
  }
  std::string Resolve(const std::string& path, bool follow_last = false, int64_t dirfd = AT_FDCWD) {
    absl::StatusOr<std::string> r = ResolveTaskPath(pid_, dirfd, path, follow_last);
    return r.ok() ? *r : absl::StrCat("error: ", r.status().message());
  }

  std::string root_;
  pid_t pid_ = -1;
  int hold_[2] = {-1, -1};
};

TEST_F(TaskPathTest, EveryAliasOfAPathResolvesToIt) {
  const std::string want = "/forbidden/x";
  EXPECT_EQ(Resolve("/forbidden/x"), want);
  EXPECT_EQ(Resolve("//forbidden/./x"), want);
  EXPECT_EQ(Resolve("/tmp/../forbidden/x"), want);
  EXPECT_EQ(Resolve("/../../forbidden/x"), want) << "'..' climbed above the task's root";
  EXPECT_EQ(Resolve("../forbidden/x"), want) << "relative to the cwd /tmp";
  EXPECT_EQ(Resolve("x", false, kDirFd), want) << "relative to a dirfd";
  EXPECT_EQ(Resolve("/link/x"), want);
  EXPECT_EQ(Resolve("/rel/x"), want);
  EXPECT_EQ(Resolve("/a/b/up/x"), want);
  EXPECT_EQ(Resolve("/link/../forbidden/x"), want);
  EXPECT_EQ(Resolve("/proc/self/root/forbidden/x"), want);
  EXPECT_EQ(Resolve("/proc/thread-self/root/forbidden/x"), want);
  EXPECT_EQ(Resolve(absl::StrCat("/proc/", pid_, "/root/forbidden/x")), want);
  EXPECT_EQ(Resolve(absl::StrCat("/proc/self/fd/", kDirFd, "/x")), want);
  EXPECT_EQ(Resolve("/proc/self/cwd/../forbidden/x"), want);
  EXPECT_EQ(Resolve("/nope/../forbidden/x"), want) << "a missing component: lexical rest";
}

TEST_F(TaskPathTest, TheLastComponentIsFollowedOnlyWhenAsked) {
  EXPECT_EQ(Resolve("/link", /*follow_last=*/false), "/link");
  EXPECT_EQ(Resolve("/link", /*follow_last=*/true), "/forbidden");
  EXPECT_EQ(Resolve("/proc/self/root", /*follow_last=*/true), "/");
}

TEST_F(TaskPathTest, ProcSelfIsTheTaskNotTheReader) {
  // The agent (this test) reads the child's procfs: "self" must be the
  // child's pid there, whatever the reader's is.
  EXPECT_EQ(Resolve("/proc/self", true), absl::StrCat("/proc/", pid_));
  EXPECT_EQ(Resolve("/proc/thread-self", true), absl::StrCat("/proc/", pid_, "/task/", pid_));
}

TEST_F(TaskPathTest, AnFdWithoutAPathIsNamedByItsText) {
  // The child's fd 0-2 are whatever the test runner gave; its pipe ends
  // (hold_) are pipes: "pipe:[N]", which no path glob matches.
  const std::string r = Resolve(absl::StrCat("/proc/self/fd/", hold_[0]), true);
  EXPECT_EQ(r.rfind("pipe:[", 0), 0u) << r;
}

TEST_F(TaskPathTest, LinksOutOfTheRootAndLoopsAreErrors) {
  // /proc/1 is the host's init: its root is outside the child's root.
  EXPECT_EQ(Resolve("/proc/1/root/forbidden/x").rfind("error: ", 0), 0u)
      << Resolve("/proc/1/root/forbidden/x");
  EXPECT_EQ(Resolve("/loop1/x").rfind("error: ", 0), 0u) << Resolve("/loop1/x");
}

// The inode of the directory an O_PATH fd names.
ino_t InodeOf(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

ino_t InodeOf(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

TEST_F(TaskPathTest, ACallRootServesOneCallOfOneTask) {
  CallRoot call(pid_);
  {
    CallRootScope scope(&call);
    UniqueFd owned;
    absl::StatusOr<int> first = TaskRootFd(pid_, owned);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_FALSE(owned.valid()) << "the call root keeps it";
    EXPECT_EQ(InodeOf(*first), InodeOf(root_));
    // Every later resolution of the call uses the same fd.
    EXPECT_EQ(Resolve("/link/x"), "/forbidden/x");
    absl::StatusOr<int> again = TaskRootFd(pid_, owned);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *first);
    // Another task is never served the call's root.
    absl::StatusOr<int> other = TaskRootFd(getpid(), owned);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_TRUE(owned.valid());
    EXPECT_NE(*other, *first);
    EXPECT_EQ(InodeOf(*other), InodeOf("/"));
  }
  // Outside the scope nothing is shared.
  UniqueFd owned;
  absl::StatusOr<int> fresh = TaskRootFd(pid_, owned);
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(owned.valid());
}

TEST_F(TaskPathTest, ATaskThatChangesItsRootBetweenCallsIsSeenInTheNewOne) {
  // A task in the agent's root that chroots into root_ between two calls:
  // each call (its own CallRoot, as the engine makes one per notification)
  // resolves in the root the task has then.
  int go[2], done[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(done), 0);
  const std::string into = root_;
  pid_t t = fork();
  ASSERT_GE(t, 0);
  if (t == 0) {
    close(go[1]);
    close(done[0]);
    char c;
    if (write(done[1], "r", 1) != 1 || read(go[0], &c, 1) != 1) _exit(1);
    if (chroot(into.c_str()) != 0 || chdir("/") != 0) _exit(2);
    if (write(done[1], "c", 1) != 1) _exit(3);
    (void)!read(go[0], &c, 1);
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(done[0], &c, 1), 1);
  auto resolve_in_call = [&](const std::string& path, ino_t* root_ino) {
    CallRoot call(t);
    CallRootScope scope(&call);
    UniqueFd owned;
    absl::StatusOr<int> fd = TaskRootFd(t, owned);
    *root_ino = fd.ok() ? InodeOf(*fd) : 0;
    absl::StatusOr<std::string> r = ResolveTaskPath(t, AT_FDCWD, path, /*follow_last=*/true);
    return r.ok() ? *r : absl::StrCat("error: ", r.status().message());
  };
  ino_t before = 0, after = 0;
  // In the agent's root, root_/link is the absolute symlink to /forbidden,
  // which resolves in the agent's root.
  EXPECT_EQ(resolve_in_call(root_ + "/link", &before), "/forbidden");
  EXPECT_EQ(before, InodeOf("/"));
  ASSERT_EQ(write(go[1], "g", 1), 1);
  ASSERT_EQ(read(done[0], &c, 1), 1);
  EXPECT_EQ(resolve_in_call("/link", &after), "/forbidden");
  EXPECT_EQ(after, InodeOf(root_)) << "the second call used the root of the first";
  EXPECT_EQ(resolve_in_call(root_ + "/link", &after), root_ + "/link")
      << "the agent's path must not exist in the task's new root";
  close(go[1]);
  int st;
  ASSERT_EQ(waitpid(t, &st, 0), t);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(go[0]);
  close(done[0]);
  close(done[1]);
}

}  // namespace
}  // namespace seccomp_agent
