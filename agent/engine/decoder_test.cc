#include "agent/engine/decoder.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

SyscallEvent Ev(const char* name) {
  SyscallEvent ev;
  ev.pid = getpid();
  ev.arch = AUDIT_ARCH_X86_64;
  ev.syscall = name;
  return ev;
}

TEST(Decoder, OpenatPathAndGoStyleAtFdcwd) {
  const char* path = "/etc/hosts";
  SyscallEvent ev = Ev("openat");
  ev.args[0] = 0xffffffffffffff9cULL;  // Go's AT_FDCWD
  ev.args[1] = reinterpret_cast<uint64_t>(path);
  EXPECT_TRUE(DecodeEvent(ev, kNeedPath, 4096));
  EXPECT_EQ(ev.path, "/etc/hosts");
  EXPECT_EQ(ev.dirfd, AT_FDCWD);
  SyscallEvent c = Ev("openat");
  c.args[0] = 0xffffff9cULL;  // C's AT_FDCWD
  c.args[1] = reinterpret_cast<uint64_t>(path);
  DecodeEvent(c, kNeedPath, 4096);
  EXPECT_EQ(c.dirfd, AT_FDCWD);
}

TEST(Decoder, OnlyWhatIsNeededIsRead) {
  SyscallEvent ev = Ev("openat");
  ev.args[1] = 8;  // unreadable: would fail if read
  EXPECT_FALSE(DecodeEvent(ev, kNeedNothing, 4096));
  EXPECT_FALSE(ev.path.has_value());
  EXPECT_TRUE(ev.decode_error.empty());
}

TEST(Decoder, UnreadablePathIsAnErrorNotACrash) {
  SyscallEvent ev = Ev("mkdir");
  ev.args[0] = 8;
  EXPECT_TRUE(DecodeEvent(ev, kNeedPath, 4096));
  EXPECT_FALSE(ev.path.has_value());
  EXPECT_NE(ev.decode_error.find("path"), std::string::npos);
}

TEST(Decoder, RelativePathResolvedAgainstCwdAndDirfd) {
  char dir[] = "/tmp/decoder-rel-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  char old_cwd[4096];
  ASSERT_NE(getcwd(old_cwd, sizeof(old_cwd)), nullptr);
  ASSERT_EQ(chdir(dir), 0);
  const char* rel = "./sub/../x";
  SyscallEvent ev = Ev("mkdir");
  ev.args[0] = reinterpret_cast<uint64_t>(rel);
  DecodeEvent(ev, kNeedPath, 4096);
  EXPECT_EQ(ev.path, "./sub/../x");
  EXPECT_EQ(ev.abs_path, std::string(dir) + "/x");
  ASSERT_EQ(chdir(old_cwd), 0);

  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dfd, 0);
  const char* rel2 = "y/z";
  SyscallEvent at = Ev("mkdirat");
  at.args[0] = dfd;
  at.args[1] = reinterpret_cast<uint64_t>(rel2);
  DecodeEvent(at, kNeedPath, 4096);
  EXPECT_EQ(at.abs_path, std::string(dir) + "/y/z");
  close(dfd);
  rmdir(dir);

  const char* abs = "/a/b";
  SyscallEvent a = Ev("mkdir");
  a.args[0] = reinterpret_cast<uint64_t>(abs);
  DecodeEvent(a, kNeedPath, 4096);
  EXPECT_EQ(a.abs_path, "/a/b");  // absolute paths are resolved too (task_path.h)
}

// The path a setxattr rule matches is the file the kernel would set the
// attribute on: setxattr follows a final symlink, lsetxattr does not.
TEST(Decoder, SetxattrFollowsTheLastSymlinkLsetxattrDoesNot) {
  char dir[] = "/tmp/decoder-xattr-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string target = std::string(dir) + "/t";
  const std::string link = std::string(dir) + "/l";
  ASSERT_EQ(mkdir(target.c_str(), 0700), 0);
  ASSERT_EQ(symlink("t", link.c_str()), 0);
  SyscallEvent set = Ev("setxattr");
  set.args[0] = reinterpret_cast<uint64_t>(link.c_str());
  EXPECT_TRUE(DecodeEvent(set, kNeedPath, 4096));
  EXPECT_EQ(set.abs_path, target);
  SyscallEvent lset = Ev("lsetxattr");
  lset.args[0] = reinterpret_cast<uint64_t>(link.c_str());
  EXPECT_TRUE(DecodeEvent(lset, kNeedPath, 4096));
  EXPECT_EQ(lset.abs_path, link);
  unlink(link.c_str());
  rmdir(target.c_str());
  rmdir(dir);
}

TEST(Decoder, RenamePaths) {
  const char* a = "/a";
  const char* b = "/b";
  SyscallEvent ev = Ev("renameat2");
  ev.args[0] = AT_FDCWD;
  ev.args[1] = reinterpret_cast<uint64_t>(a);
  ev.args[2] = AT_FDCWD;
  ev.args[3] = reinterpret_cast<uint64_t>(b);
  DecodeEvent(ev, kNeedPath, 4096);
  EXPECT_EQ(ev.path, "/a");
  EXPECT_EQ(ev.path2, "/b");
}

TEST(Decoder, BindInet) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(80);
  inet_pton(AF_INET, "0.0.0.0", &in.sin_addr);
  SyscallEvent ev = Ev("bind");
  ev.args[0] = 5;
  ev.args[1] = reinterpret_cast<uint64_t>(&in);
  ev.args[2] = sizeof(in);
  DecodeEvent(ev, kNeedSockaddr, 4096);
  ASSERT_TRUE(ev.sockaddr.has_value());
  EXPECT_EQ(ev.sockaddr->family, AF_INET);
  EXPECT_EQ(ev.sockaddr->address, "0.0.0.0");
  EXPECT_EQ(ev.sockaddr->port, 80);
  EXPECT_EQ(ev.fd, 5);
}

TEST(Decoder, UnixPathAndAbstract) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  strcpy(un.sun_path, "/run/x.sock");
  Sockaddr s = ParseSockaddr(reinterpret_cast<uint8_t*>(&un),
                             offsetof(sockaddr_un, sun_path) + strlen(un.sun_path) + 1);
  EXPECT_EQ(s.address, "/run/x.sock");
  EXPECT_FALSE(s.port.has_value());
  sockaddr_un ab{};
  ab.sun_family = AF_UNIX;
  memcpy(ab.sun_path, "\0name", 5);
  Sockaddr t = ParseSockaddr(reinterpret_cast<uint8_t*>(&ab), offsetof(sockaddr_un, sun_path) + 5);
  EXPECT_EQ(t.address, "@name");
}

TEST(Decoder, Inet6AndShortInput) {
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(443);
  inet_pton(AF_INET6, "::1", &in6.sin6_addr);
  Sockaddr s = ParseSockaddr(reinterpret_cast<uint8_t*>(&in6), sizeof(in6));
  EXPECT_EQ(s.address, "::1");
  EXPECT_EQ(s.port, 443);
  uint8_t one = 2;
  Sockaddr t = ParseSockaddr(&one, 1);
  EXPECT_EQ(t.family, 0);
  Sockaddr u = ParseSockaddr(reinterpret_cast<uint8_t*>(&in6), 4);  // AF_INET6 but truncated
  EXPECT_EQ(u.address, "");
}

TEST(Decoder, WriteBytesCapped) {
  std::string data(100, 'z');
  SyscallEvent ev = Ev("write");
  ev.args[0] = 1;
  ev.args[1] = reinterpret_cast<uint64_t>(data.data());
  ev.args[2] = data.size();
  DecodeEvent(ev, kNeedWriteBytes, 10);
  EXPECT_EQ(ev.write_bytes, std::string(10, 'z'));
  EXPECT_EQ(ev.write_count, 100u);
  EXPECT_EQ(ev.fd, 1);
}

}  // namespace
}  // namespace seccomp_agent
