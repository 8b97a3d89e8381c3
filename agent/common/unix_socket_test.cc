#include "agent/common/unix_socket.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "agent/common/status.h"
#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

size_t OpenFds() {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

class UnixSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/unix_socket_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  static mode_t ModeOf(const std::string& path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
  }
  static ino_t InodeOf(const std::string& path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
  }
  std::string dir_;
};

TEST_F(UnixSocketTest, ListenCreatesTheModeWithoutTouchingTheUmask) {
  const mode_t old = umask(022);
  auto a = UnixListener::Listen(Path("a.sock"), {SOCK_STREAM, 0600});
  auto b = UnixListener::Listen(Path("b.sock"), {SOCK_STREAM, 0660});
  umask(077);  // narrower than the mode: the missing bits are given back
  auto c = UnixListener::Listen(Path("c.sock"), {SOCK_STREAM, 0660});
  EXPECT_EQ(umask(old), 077) << "Listen changed the umask";
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(ModeOf(Path("a.sock")), 0600);
  EXPECT_EQ(ModeOf(Path("b.sock")), 0660);
  EXPECT_EQ(ModeOf(Path("c.sock")), 0660);
}

TEST_F(UnixSocketTest, ListenCreatesParentDirs) {
  auto l = UnixListener::Listen(Path("x/y/a.sock"));
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_TRUE(ConnectUnix(Path("x/y/a.sock")).ok());
}

TEST_F(UnixSocketTest, ListenRefusesALiveSocketAndLeavesItAlone) {
  auto first = UnixListener::Listen(Path("a.sock"));
  ASSERT_TRUE(first.ok()) << first.status();
  const ino_t ino = InodeOf(Path("a.sock"));
  auto second = UnixListener::Listen(Path("a.sock"));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists) << second.status();
  EXPECT_EQ(InodeOf(Path("a.sock")), ino);
  EXPECT_TRUE(ConnectUnix(Path("a.sock")).ok());
  // A listener of another type answers too (EPROTOTYPE).
  auto seq = UnixListener::Listen(Path("a.sock"), {SOCK_SEQPACKET, 0600});
  EXPECT_EQ(seq.status().code(), absl::StatusCode::kAlreadyExists) << seq.status();
  EXPECT_EQ(InodeOf(Path("a.sock")), ino);
}

TEST_F(UnixSocketTest, ListenReplacesAStaleSocket) {
  {
    UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto addr = UnixAddress(Path("a.sock"));
    ASSERT_TRUE(addr.ok());
    ASSERT_EQ(bind(s.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)), 0);
    ASSERT_EQ(listen(s.get(), 1), 0);
  }  // closed, file left behind: stale
  auto l = UnixListener::Listen(Path("a.sock"));
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_TRUE(ConnectUnix(Path("a.sock")).ok());
}

TEST_F(UnixSocketTest, ListenRefusesSomethingThatIsNotASocket) {
  { UniqueFd f(open(Path("file").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644)); }
  auto l = UnixListener::Listen(Path("file"));
  EXPECT_EQ(l.status().code(), absl::StatusCode::kFailedPrecondition) << l.status();
  EXPECT_TRUE(std::filesystem::is_regular_file(Path("file")));
}

TEST_F(UnixSocketTest, BadPathsAreInvalidArguments) {
  EXPECT_EQ(UnixListener::Listen("").status().code(), absl::StatusCode::kInvalidArgument);
  std::string long_path = Path(std::string(120, 'x'));
  EXPECT_EQ(UnixListener::Listen(long_path).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConnectUnix(long_path).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(UnixSocketTest, CloseUnlinksOnlyItsOwnInode) {
  auto own = UnixListener::Listen(Path("a.sock"));
  ASSERT_TRUE(own.ok());
  own->Close();
  EXPECT_FALSE(std::filesystem::exists(Path("a.sock")));

  auto old = UnixListener::Listen(Path("b.sock"));
  ASSERT_TRUE(old.ok());
  ASSERT_EQ(unlink(Path("b.sock").c_str()), 0);  // a newer server took the path
  auto newer = UnixListener::Listen(Path("b.sock"));
  ASSERT_TRUE(newer.ok()) << newer.status();
  EXPECT_FALSE(old->PathStillOurs());
  EXPECT_TRUE(newer->PathStillOurs());
  old->Close();
  EXPECT_TRUE(ConnectUnix(Path("b.sock")).ok()) << "the newer server's socket was unlinked";
}

TEST_F(UnixSocketTest, MovedListenerKeepsThePath) {
  auto l = UnixListener::Listen(Path("a.sock"));
  ASSERT_TRUE(l.ok());
  UnixListener moved = *std::move(l);
  { UnixListener emptied = std::move(moved); }
  EXPECT_FALSE(std::filesystem::exists(Path("a.sock")));
}

TEST(UnixMessages, FdsArriveCloexecWithTheData) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  int p[2];
  ASSERT_EQ(pipe(p), 0);  // not CLOEXEC: the received copies must be
  UniqueFd r(p[0]), w(p[1]);
  ASSERT_TRUE(SendWithFds(a.get(), "hello", {r.get(), w.get()}).ok());
  char buf[64];
  auto m = RecvWithFds(b.get(), absl::MakeSpan(buf), 4);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(std::string(buf, m->bytes), "hello");
  ASSERT_EQ(m->fds.size(), 2u);
  EXPECT_FALSE(m->truncated);
  EXPECT_FALSE(m->control_truncated);
  for (const UniqueFd& fd : m->fds) EXPECT_EQ(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  ASSERT_EQ(write(m->fds[1].get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(read(r.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
}

TEST(UnixMessages, MoreFdsThanAskedForAreClosedAndReported) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  UniqueFd n1(open("/dev/null", O_RDONLY | O_CLOEXEC)), n2(open("/dev/null", O_RDONLY | O_CLOEXEC)),
      n3(open("/dev/null", O_RDONLY | O_CLOEXEC)), n4(open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(SendWithFds(a.get(), "m", {n1.get(), n2.get(), n3.get(), n4.get()}).ok());
  const size_t before = OpenFds();
  char buf[8];
  auto m = RecvWithFds(b.get(), absl::MakeSpan(buf), 1);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->control_truncated);
  EXPECT_LE(m->fds.size(), 1u);
  EXPECT_EQ(OpenFds(), before + m->fds.size()) << "an fd past max_fds leaked";
}

TEST(UnixMessages, ALongerDatagramIsReportedTruncated) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  ASSERT_TRUE(SendWithFds(a.get(), "0123456789").ok());
  char buf[4];
  auto m = RecvWithFds(b.get(), absl::MakeSpan(buf), 1);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->truncated);
  EXPECT_EQ(m->bytes, 4u);
}

TEST(UnixMessages, ErrorsKeepTheirErrno) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  char buf[4];
  auto m = RecvWithFds(b.get(), absl::MakeSpan(buf), 1, MSG_DONTWAIT);
  EXPECT_EQ(ErrnoOf(m.status()), EAGAIN) << m.status();
  int many[kMaxFdsPerMessage + 1] = {};
  EXPECT_EQ(SendWithFds(a.get(), "x", many).code(), absl::StatusCode::kInvalidArgument);
  a.reset();
  auto eof = RecvWithFds(b.get(), absl::MakeSpan(buf), 1);
  ASSERT_TRUE(eof.ok());
  EXPECT_EQ(eof->bytes, 0u);
  EXPECT_EQ(ErrnoOf(SendWithFds(b.get(), "x")), EPIPE);  // MSG_NOSIGNAL: no SIGPIPE
}

}  // namespace
}  // namespace seccomp_agent
