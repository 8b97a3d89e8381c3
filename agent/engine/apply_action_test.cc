#include "agent/engine/apply_action.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "agent/common/status.h"
#include "agent/engine/decoder.h"
#include "agent/testing/trapped_child.h"
#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

namespace v1 = ::seccompagent::v1;

struct Shared {
  int64_t ret[4];
  int err[4];
  char data[64];
};

// Zeroed memory the trapped child writes and the test reads; null if mmap
// fails.
Shared* MapShared() {
  void* p =
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  memset(p, 0, sizeof(Shared));
  return static_cast<Shared*>(p);
}

// A child whose openat of `path` traps; it writes the fd or errno and what
// it read from the fd into `sh`.
absl::StatusOr<testing::TrappedChild> SpawnOpener(Shared* sh, const char* path) {
  return testing::TrappedChild::Spawn({"openat"}, [sh, path] {
    const int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY));
    sh->ret[0] = fd;
    sh->err[0] = fd < 0 ? errno : 0;
    if (fd >= 0) sh->ret[1] = read(fd, sh->data, sizeof(sh->data) - 1);
    return 0;
  });
}

// The event the engine builds for a trapped openat, nothing decoded yet.
SyscallEvent OpenatEvent(const seccomp_notif& n) {
  SyscallEvent ev;
  ev.pid = static_cast<pid_t>(n.pid);
  ev.arch = n.data.arch;
  ev.nr = n.data.nr;
  ev.syscall = "openat";
  for (int i = 0; i < 6; i++) ev.args[i] = n.data.args[i];
  return ev;
}

// Issue 12 item 5: a redirect_open rule never opens the original file, and
// its target stays under the redirect root after resolution. Each case: the
// child's openat of `requested` (what the decoder resolved it to in
// `resolved`) is answered by ApplyAction; the child reports fd or errno.
struct RedirectCase {
  std::string requested, resolved;
  std::string want_result;  // the Outcome's result ("" = an fd)
  std::string want_data;    // what the child reads from the fd
};

void RunRedirect(const RedirectCase& c, const v1::Action& a,
                 const std::vector<std::string>& roots) {
  SCOPED_TRACE(c.requested);
  Shared* sh = MapShared();
  ASSERT_NE(sh, nullptr);
  auto child = SpawnOpener(sh, c.requested.c_str());
  ASSERT_TRUE(child.ok()) << child.status();
  child->Start();
  auto n = child->RecvNotification();
  ASSERT_TRUE(n.ok()) << n.status();
  SyscallEvent ev = OpenatEvent(*n);
  ev.path = c.requested;
  ev.abs_path = c.resolved;
  injector::InjectorOptions o;
  o.mode = injector::Mode::kEmulate;
  injector::Injector inj(o, DefaultUnotify());
  auto out = ApplyAction(inj, child->listener(), *n, ev, a, roots);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(child->Wait(), 0);
  if (c.want_result.empty()) {
    EXPECT_GE(sh->ret[0], 0) << out->result;
    EXPECT_EQ(std::string(sh->data), c.want_data);
  } else {
    EXPECT_EQ(out->result.rfind(c.want_result, 0), 0u) << out->result;
    EXPECT_EQ(sh->ret[0], -1) << "the task got an fd: " << sh->data;
    EXPECT_EQ(sh->err[0], EACCES);
  }
  munmap(sh, sizeof(Shared));
}

TEST(Redirect, MapsOnTheResolvedPathAndNeverEscapesItsRoot) {
  char dir[] = "/tmp/apply-action-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string root = std::string(dir) + "/root";
  ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((root + "/data").c_str(), 0755), 0);
  { std::ofstream(root + "/hosts") << "MAPPED"; }
  { std::ofstream(root + "/data/f") << "DATA"; }
  { std::ofstream(std::string(dir) + "/outside") << "OUTSIDE"; }
  ASSERT_EQ(symlink((std::string(dir) + "/outside").c_str(), (root + "/escape").c_str()), 0);
  ASSERT_EQ(symlink("../../outside", (root + "/data/up").c_str()), 0);
  v1::Action a;
  auto* r = a.mutable_redirect_open();
  (*r->mutable_exact())["/etc/hosts"] = root + "/hosts";
  (*r->mutable_exact())["/etc/escape"] = root + "/escape";
  (*r->mutable_prefix())["/data/"] = root + "/data/";
  const std::vector<std::string> roots = {root};
  const std::vector<RedirectCase> cases = {
      {"/etc/hosts", "/etc/hosts", "", "MAPPED"},
      // Spellings of the key: the decoder resolved them to the key.
      {"//etc/./hosts", "/etc/hosts", "", "MAPPED"},
      {"/tmp/../etc/hosts", "/etc/hosts", "", "MAPPED"},
      {"/data/f", "/data/f", "", "DATA"},
      // A match without an entry: never the original file.
      {"/etc/hostname", "/etc/hostname", "EACCES (no mapping)", ""},
      // `/data/../../outside` resolves to /outside: not under the prefix.
      {"/data/../../outside", "/outside", "EACCES (no mapping)", ""},
      // Targets whose symlinks lead out of the root.
      {"/etc/escape", "/etc/escape", "EACCES (redirect target", ""},
      {"/data/up", "/data/up", "EACCES (redirect target", ""},
  };
  for (const RedirectCase& c : cases) RunRedirect(c, a, roots);
  (void)system((std::string("rm -rf ") + dir).c_str());
}

// A path the agent cannot read (past PATH_MAX, or not mapped): the call
// fails with the errno the kernel gives for it, not the fallback errno.
// The decoder reads the path as the engine does; each case's expected
// errno is what the kernel itself answers this process.
TEST(Redirect, AnUnreadablePathFailsAsTheKernelFailsIt) {
  v1::Action a;
  (*a.mutable_redirect_open()->mutable_exact())["/etc/hosts"] = "/etc/hostname";
  static const std::string kLong(PATH_MAX + 16, 'a');
  struct Case {
    const char* name;
    const char* path;
  };
  for (const Case& c : {Case{"past PATH_MAX", kLong.c_str()},
                        Case{"unmapped", reinterpret_cast<const char*>(uintptr_t{8})}}) {
    SCOPED_TRACE(c.name);
    errno = 0;
    ASSERT_EQ(syscall(SYS_openat, AT_FDCWD, c.path, O_RDONLY), -1);
    const int kernel_errno = errno;
    Shared* sh = MapShared();
    ASSERT_NE(sh, nullptr);
    auto child = SpawnOpener(sh, c.path);
    ASSERT_TRUE(child.ok()) << child.status();
    child->Start();
    auto n = child->RecvNotification();
    ASSERT_TRUE(n.ok()) << n.status();
    SyscallEvent ev = OpenatEvent(*n);
    DecodeEvent(ev, kNeedPath, 0);
    EXPECT_FALSE(ev.path.has_value());
    EXPECT_EQ(ev.path_errno, kernel_errno) << ev.decode_error;
    injector::InjectorOptions o;
    o.mode = injector::Mode::kEmulate;
    injector::Injector inj(o, DefaultUnotify());
    auto out = ApplyAction(inj, child->listener(), *n, ev, a, {"/etc"});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->result, absl::StrCat(ErrnoName(kernel_errno), " (path unreadable)"));
    EXPECT_EQ(child->Wait(), 0);
    EXPECT_EQ(sh->ret[0], -1);
    EXPECT_EQ(sh->err[0], kernel_errno) << "the task got " << ErrnoName(sh->err[0]);
    munmap(sh, sizeof(Shared));
  }
}

}  // namespace
}  // namespace seccomp_agent
