#include "agent/model/syscall_args.h"

#include <seccomp.h>

#include <string>

#include "agent/model/event.h"
#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

TEST(SyscallArgsTest, PathSyscalls) {
  const SyscallArgLayout* mkdir = ArgLayoutFor("mkdir");
  ASSERT_NE(mkdir, nullptr);
  EXPECT_EQ(mkdir->path, 0);
  EXPECT_EQ(mkdir->dirfd, -1);
  const SyscallArgLayout* mkdirat = ArgLayoutFor("mkdirat");
  ASSERT_NE(mkdirat, nullptr);
  EXPECT_EQ(mkdirat->path, 1);
  EXPECT_EQ(mkdirat->dirfd, 0);
  const SyscallArgLayout* openat2 = ArgLayoutFor("openat2");
  ASSERT_NE(openat2, nullptr);
  EXPECT_EQ(openat2->path, 1);
  EXPECT_EQ(mkdirat->Provides(), kNeedPath);
}

TEST(SyscallArgsTest, TwoPathSyscalls) {
  const SyscallArgLayout* r = ArgLayoutFor("renameat2");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->path, 1);
  EXPECT_EQ(r->dirfd, 0);
  EXPECT_EQ(r->path2, 3);
  EXPECT_EQ(r->dirfd2, 2);
  const SyscallArgLayout* s = ArgLayoutFor("symlinkat");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->path, 0);
  EXPECT_EQ(s->path2, 2);
  EXPECT_EQ(s->dirfd2, 1);
}

TEST(SyscallArgsTest, SockaddrAndWrite) {
  const SyscallArgLayout* b = ArgLayoutFor("bind");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->sockaddr, 1);
  EXPECT_EQ(b->sockaddr_len, 2);
  EXPECT_EQ(b->Provides(), kNeedSockaddr);
  const SyscallArgLayout* w = ArgLayoutFor("write");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->fd, 0);
  EXPECT_EQ(w->buf, 1);
  EXPECT_EQ(w->count, 2);
  EXPECT_EQ(w->Provides(), kNeedWriteBytes);
  EXPECT_NE(ArgLayoutFor("pwrite64"), nullptr);
}

TEST(SyscallArgsTest, UnknownOrArglessSyscallsHaveNoLayout) {
  EXPECT_EQ(ArgLayoutFor("getpid"), nullptr);
  EXPECT_EQ(ArgLayoutFor(""), nullptr);
  EXPECT_EQ(ArgLayoutFor("mkdri"), nullptr);
}

TEST(SyscallArgsTest, EveryEntryIsARealSyscallWithSaneIndexes) {
  for (const SyscallArgLayout& l : AllArgLayouts()) {
    SCOPED_TRACE(l.syscall);
    EXPECT_NE(seccomp_syscall_resolve_name(l.syscall), __NR_SCMP_ERROR);
    EXPECT_EQ(ArgLayoutFor(l.syscall), &l);
    for (int8_t i :
         {l.path, l.dirfd, l.path2, l.dirfd2, l.sockaddr, l.sockaddr_len, l.fd, l.buf, l.count}) {
      EXPECT_GE(i, -1);
      EXPECT_LE(i, 5);
    }
    EXPECT_NE(l.Provides(), kNeedNothing);
  }
}

}  // namespace
}  // namespace seccomp_agent
