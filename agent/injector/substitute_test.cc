#include "agent/injector/substitute.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <cerrno>
#include <string>

#include "agent/common/status.h"
#include "gtest/gtest.h"

namespace seccomp_agent::injector {
namespace {

constexpr uint32_t kX86_64 = AUDIT_ARCH_X86_64;

std::string Sin() {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  return std::string(reinterpret_cast<const char*>(&a), sizeof(a));
}

// Expects `s` to fail with `err` and to name `rule`.
void ExpectRule(const absl::Status& s, int err, const std::string& rule) {
  EXPECT_EQ(ErrnoOf(s), err) << s;
  EXPECT_NE(s.message().find("substitute rule " + rule + ":"), std::string::npos) << s;
}

TEST(Substitute, BuildersPassForTheirOwnSyscall) {
  EXPECT_TRUE(Validate(Substitute::Openat(AT_FDCWD, "/a", O_RDONLY, 0), __NR_openat, kX86_64,
                       Ruleset::kKernel)
                  .ok());
  EXPECT_TRUE(Validate(Substitute::Bind(3, Sin()), __NR_bind, kX86_64, Ruleset::kKernel).ok());
  EXPECT_TRUE(Validate(Substitute::Write(1, "abc", 3), __NR_write, kX86_64, Ruleset::kKernel).ok());
  EXPECT_TRUE(Validate(Substitute::Write(1, "", 0), __NR_write, kX86_64, Ruleset::kKernel).ok());
  EXPECT_TRUE(
      Validate(Substitute::Open("/a", O_RDONLY, 0), __NR_open, kX86_64, Ruleset::kEmulation).ok());
}

TEST(Substitute, OpenatLayout) {
  Substitute s = Substitute::Openat(AT_FDCWD, "/etc/x", O_RDONLY | O_CLOEXEC, 0640);
  EXPECT_EQ(s.nr, __NR_openat);
  EXPECT_EQ(static_cast<int>(s.args[0]), AT_FDCWD);
  EXPECT_EQ(s.args[1], 0u);
  EXPECT_EQ(s.args[2], static_cast<uint64_t>(O_RDONLY | O_CLOEXEC));
  EXPECT_EQ(s.args[3], 0640u);
  EXPECT_EQ(s.args_in_buf_mask, 1u << 1);
  EXPECT_EQ(s.buf, std::string("/etc/x\0", 7));
  seccomp_notif_inject k = ToKernelStruct(s, 77);
  EXPECT_EQ(k.id, 77u);
  EXPECT_EQ(k.nr, static_cast<uint64_t>(__NR_openat));
  EXPECT_EQ(k.buf_size, 7u);
  EXPECT_EQ(k.buf, reinterpret_cast<uintptr_t>(s.buf.data()));
  EXPECT_EQ(k.args_in_buf_mask, 1u << 1);
  EXPECT_EQ(sizeof(k), 80u);
}

TEST(Substitute, WhitelistIsEopnotsupp) {
  Substitute s = Substitute::Openat(AT_FDCWD, "/a", 0, 0);
  s.nr = __NR_mkdir;
  ExpectRule(Validate(s, __NR_mkdir, kX86_64, Ruleset::kKernel), EOPNOTSUPP, "whitelist");
  // open(2) is emulation-only.
  ExpectRule(Validate(Substitute::Open("/a", 0, 0), __NR_open, kX86_64, Ruleset::kKernel),
             EOPNOTSUPP, "whitelist");
}

TEST(Substitute, CompatTrapIsEopnotsupp) {
  ExpectRule(Validate(Substitute::Write(1, "a", 1), __NR_write, AUDIT_ARCH_I386, Ruleset::kKernel),
             EOPNOTSUPP, "native-abi");
}

TEST(Substitute, MaskBeyondSixArgsIsEinval) {
  Substitute s = Substitute::Write(1, "a", 1);
  s.args_in_buf_mask |= 1u << 6;
  ExpectRule(Validate(s, __NR_write, kX86_64, Ruleset::kKernel), EINVAL, "mask-range");
}

TEST(Substitute, OverTheCapIsE2big) {
  std::string big(SECCOMP_NOTIF_INJECT_MAX_BYTES + 1, 'x');
  ExpectRule(Validate(Substitute::Write(1, big, big.size()), __NR_write, kX86_64, Ruleset::kKernel),
             E2BIG, "size-cap");
  std::string max(SECCOMP_NOTIF_INJECT_MAX_BYTES, 'x');
  EXPECT_TRUE(
      Validate(Substitute::Write(1, max, max.size()), __NR_write, kX86_64, Ruleset::kKernel).ok());
}

TEST(Substitute, OffsetPastBufIsEinval) {
  Substitute s = Substitute::Write(1, "abc", 3);
  s.args[1] = 4;
  ExpectRule(Validate(s, __NR_write, kX86_64, Ruleset::kKernel), EINVAL, "offset");
  // An offset equal to buf_size is allowed (zero bytes left) ...
  s.args[1] = 3;
  s.args[2] = 0;
  EXPECT_TRUE(Validate(s, __NR_write, kX86_64, Ruleset::kKernel).ok());
}

TEST(Substitute, MaskMustBeExactlyThePointerArg) {
  Substitute s = Substitute::Write(1, "abc", 3);
  s.args_in_buf_mask = 0;  // pointer not in buf
  ExpectRule(Validate(s, __NR_write, kX86_64, Ruleset::kKernel), EINVAL, "mask-pointer");
  s.args_in_buf_mask = (1u << 1) | (1u << 2);  // a scalar marked as offset
  ExpectRule(Validate(s, __NR_write, kX86_64, Ruleset::kKernel), EINVAL, "mask-pointer");
  Substitute o = Substitute::Open("/a", 0, 0);
  o.args_in_buf_mask = 1u << 1;
  ExpectRule(Validate(o, __NR_open, kX86_64, Ruleset::kEmulation), EINVAL, "mask-pointer");
}

TEST(Substitute, AddrlenRules) {
  Substitute s = Substitute::Bind(3, Sin());
  s.args[2] = sizeof(sockaddr_storage) + 1;
  ExpectRule(Validate(s, __NR_bind, kX86_64, Ruleset::kKernel), EINVAL, "addrlen");
  s = Substitute::Bind(3, Sin());
  s.args[2] = s.buf.size() + 1;
  ExpectRule(Validate(s, __NR_bind, kX86_64, Ruleset::kKernel), EINVAL, "addrlen");
  s = Substitute::Bind(3, Sin());
  s.args[1] = 4;  // 12 bytes left, addrlen 16
  ExpectRule(Validate(s, __NR_bind, kX86_64, Ruleset::kKernel), EINVAL, "addrlen");
}

TEST(Substitute, WriteCountInsideBuf) {
  Substitute s = Substitute::Write(1, "abc", 3);
  s.args[2] = 4;
  ExpectRule(Validate(s, __NR_write, kX86_64, Ruleset::kKernel), EINVAL, "count");
}

TEST(Substitute, PathNeedsANulInsideBuf) {
  Substitute s = Substitute::Openat(AT_FDCWD, "/abc", 0, 0);
  s.buf.pop_back();
  ExpectRule(Validate(s, __NR_openat, kX86_64, Ruleset::kKernel), EINVAL, "path-nul");
  // The NUL must come after the offset.
  s = Substitute::Openat(AT_FDCWD, "/abc", 0, 0);
  s.buf = std::string("\0/abc", 5);
  s.args[1] = 1;
  ExpectRule(Validate(s, __NR_openat, kX86_64, Ruleset::kKernel), EINVAL, "path-nul");
}

TEST(Substitute, DifferentNrIsEsrchAndComesLast) {
  ExpectRule(Validate(Substitute::Write(1, "a", 1), __NR_openat, kX86_64, Ruleset::kKernel), ESRCH,
             "same-nr");
  // A struct error wins over the nr mismatch (the kernel's order).
  Substitute s = Substitute::Write(1, "a", 1);
  s.args[2] = 2;
  ExpectRule(Validate(s, __NR_openat, kX86_64, Ruleset::kKernel), EINVAL, "count");
}

TEST(Substitute, OrderMatchesTheKernel) {
  // whitelist before mask-range before size-cap before offset.
  std::string big(SECCOMP_NOTIF_INJECT_MAX_BYTES + 1, 'x');
  Substitute s = Substitute::Write(1, big, big.size());
  s.args_in_buf_mask |= 1u << 7;
  s.args[1] = big.size() + 5;
  ExpectRule(Validate(s, __NR_write, kX86_64, Ruleset::kKernel), EINVAL, "mask-range");
  s.args_in_buf_mask = 1u << 1;
  ExpectRule(Validate(s, __NR_write, kX86_64, Ruleset::kKernel), E2BIG, "size-cap");
  s.nr = __NR_read;
  ExpectRule(Validate(s, __NR_read, kX86_64, Ruleset::kKernel), EOPNOTSUPP, "whitelist");
}

TEST(Substitute, DebugString) {
  EXPECT_EQ(Substitute::Openat(AT_FDCWD, "/a", 0, 0).DebugString(), "openat(-100, \"/a\", 0, 0)");
  EXPECT_EQ(Substitute::Write(1, "hi\n", 3).DebugString(), "write(1, \"hi\\n\", 3)");
}

}  // namespace
}  // namespace seccomp_agent::injector
