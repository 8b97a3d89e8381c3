#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "agent/common/fd.h"
#include "agent/common/read_file.h"
#include "agent/common/status.h"
#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

TEST(UniqueFd, ClosesOnDestruction) {
  int raw;
  {
    UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    raw = fd.get();
  }
  EXPECT_EQ(fcntl(raw, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(UniqueFd, ReleaseKeepsFdOpen) {
  UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int raw = fd.release();
  EXPECT_FALSE(fd.valid());
  EXPECT_NE(fcntl(raw, F_GETFD), -1);
  ::close(raw);
}

TEST(UniqueFd, MoveTransfersOwnership) {
  UniqueFd a(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int raw = a.get();
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(b.get(), raw);
}

TEST(Status, ErrnoRoundTrip) {
  absl::Status s = ErrnoStatus(EACCES, "open /x");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoOf(s), EACCES);
  EXPECT_NE(s.message().find("open /x"), absl::string_view::npos);
  EXPECT_NE(s.message().find("EACCES"), absl::string_view::npos);
  EXPECT_EQ(ErrnoOf(absl::InternalError("x")), 0);
}

TEST(Status, ErrnoNames) {
  EXPECT_EQ(ErrnoName(EPERM), "EPERM");
  EXPECT_EQ(ErrnoFromString("EPERM"), EPERM);
  EXPECT_EQ(ErrnoFromString("13"), 13);
  EXPECT_EQ(ErrnoFromString("ENOPE"), -1);
  EXPECT_EQ(ErrnoFromString("0"), -1);
  EXPECT_EQ(ErrnoFromString("4096"), -1);
}

TEST(ReadWholeFile, ReadsToTheEndAndGrows) {
  // A text longer than the first 4 KiB buffer, in a pipe-free regular file.
  char tmpl[] = "/tmp/read-file-XXXXXX";
  UniqueFd fd(mkstemp(tmpl));
  ASSERT_TRUE(fd);
  const std::string big(10000, 'x');
  ASSERT_EQ(write(fd.get(), big.data(), big.size()), static_cast<ssize_t>(big.size()));
  std::string text = "stale";
  ASSERT_TRUE(ReadWholeFile(AT_FDCWD, tmpl, text).ok());
  EXPECT_EQ(text, big);
  unlink(tmpl);
  EXPECT_NE(ReadFileOrEmpty(AT_FDCWD, "/proc/self/status").find("Tgid:"), std::string::npos);
}

// procfs returns short reads before the end (a mountinfo past its first
// page came back cut at ~4 KiB): the whole text is read, to read(2)'s 0.
TEST(ReadWholeFile, ReadsAProcfsTextPastItsFirstPage) {
  std::string maps;
  ASSERT_TRUE(ReadWholeFile(AT_FDCWD, "/proc/self/maps", maps).ok());
  ASSERT_GT(maps.size(), 4096u) << "too short to show it";
  const std::string last = "[vsyscall]\n";  // x86_64's last mapping
  EXPECT_EQ(maps.substr(maps.size() - last.size()), last)
      << "the last entry is missing: " << maps.substr(maps.size() - 100);
}

// Errors are statuses, never exceptions (a libstdc++ stream read that fails
// throws from an istreambuf_iterator: the agent died reading the status
// file of a task that had exited).
TEST(ReadWholeFile, ErrorsAreStatusesNotExceptions) {
  std::string text;
  EXPECT_EQ(ErrnoOf(ReadWholeFile(AT_FDCWD, "/proc/self/nonexistent", text)), ENOENT);
  EXPECT_EQ(ErrnoOf(ReadWholeFile(AT_FDCWD, "/proc/self", text)), EISDIR);
  EXPECT_EQ(ReadFileOrEmpty(AT_FDCWD, "/proc/self"), "");
}

}  // namespace
}  // namespace seccomp_agent
