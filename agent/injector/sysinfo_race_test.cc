// sysinfo's write into the task's memory (SECURITY.md "sysinfo: writing
// into the task's memory, and its race") against a real trapped child: where
// the struct may land, and that a peer thread remapping the buffer while the
// agent answers can neither make the agent write outside the task's own
// private memory nor stop it serving. Untimed: the race runs a fixed number
// of calls and prints how many landed and how many failed.
#include <fcntl.h>
#include <linux/audit.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "agent/injector/privileged.h"
#include "agent/testing/trapped_child.h"
#include "gtest/gtest.h"

namespace seccomp_agent::injector {
namespace {

constexpr unsigned char kCanary = 0xab;
constexpr unsigned char kFile = 0x5a;

long Page() { return sysconf(_SC_PAGESIZE); }

// Shared with the child: its call results, and guard pages the agent must
// never touch.
struct Shared {
  int done = 0;
  int landed = 0;  // calls that returned 0
  int efault = 0;  // calls that returned EFAULT
  int other = 0;   // anything else (a failure)
  int last_errno = 0;
  unsigned long totalram = 0;
};

// A memfd of one page filled with kFile: stands for memory that is not the
// task's own (a file, or pages another process maps too).
int FileOfOnePage() {
  int fd = static_cast<int>(syscall(SYS_memfd_create, "sysinfo-race", 0));
  if (fd < 0) return -1;
  std::string bytes(static_cast<size_t>(Page()), static_cast<char>(kFile));
  if (pwrite(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) return -1;
  return fd;
}

bool FileUnchanged(int fd) {
  std::string bytes(static_cast<size_t>(Page()), '\0');
  if (pread(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) return false;
  return bytes.find_first_not_of(static_cast<char>(kFile)) == std::string::npos;
}

// Whether this kernel's /proc/PID/mem writes force their way into a
// read-only private page for a writer that is not the task's tracer
// (proc_mem.force_override: "always", the default, yes; "ptrace" and
// "never" no): probed on a page of our own.
bool ProcMemForces() {
  void* p = mmap(nullptr, Page(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
  const char byte = 1;
  const bool forced = fd >= 0 && pwrite(fd, &byte, 1, reinterpret_cast<off_t>(p)) == 1;
  if (fd >= 0) close(fd);
  munmap(p, Page());
  return forced;
}

// Answers `n` sysinfo calls of `child` as the agent does; every answer must
// be an Outcome (the agent never fails or crashes on what the task did).
void Serve(testing::TrappedChild& child, int n, int* efault_answers) {
  for (int i = 0; i < n; ++i) {
    auto notif = child.RecvNotification();
    ASSERT_TRUE(notif.ok()) << "call " << i << ": " << notif.status();
    ASSERT_EQ(notif->data.arch, static_cast<uint32_t>(AUDIT_ARCH_X86_64));
    auto out = AnswerSysinfo(DefaultUnotify(), child.listener(), *notif, 0);
    ASSERT_TRUE(out.ok()) << "call " << i << ": " << out.status();
    EXPECT_EQ(out->backend, kBackendAgent);
    if (out->error == EFAULT) ++*efault_answers;
  }
}

// Where the struct lands when nothing races: the task's own writable page
// (0); an unmapped page or a shared read-only mapping (EFAULT, the file
// unchanged); a private read-only mapping of the file (written where
// /proc/TID/mem writes use FOLL_FORCE, the kernel's default: the task's
// private copy-on-write page takes the struct where sysinfo(2) would say
// EFAULT; EFAULT where the host turned forcing off; the file unchanged
// either way).
TEST(SysinfoWriteTest, LandsOnlyInTheTasksOwnPrivateMemory) {
  const long page = Page();
  const int file = FileOfOnePage();
  ASSERT_GE(file, 0);
  auto* sh = static_cast<Shared*>(
      mmap(nullptr, sizeof(Shared) * 4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(sh, MAP_FAILED);
  for (int i = 0; i < 4; ++i) new (&sh[i]) Shared;
  auto child = testing::TrappedChild::Spawn({"sysinfo"}, [sh, file, page] {
    auto call = [](void* buf, Shared* s) {
      long r = syscall(SYS_sysinfo, buf);
      s->last_errno = r == 0 ? 0 : errno;
      if (r == 0) s->totalram = static_cast<struct sysinfo*>(buf)->totalram;
      s->done = 1;
    };
    void* rw = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    call(rw, &sh[0]);
    void* gone = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gone, page);
    call(gone, &sh[1]);
    void* shared_ro = mmap(nullptr, page, PROT_READ, MAP_SHARED, file, 0);
    call(shared_ro, &sh[2]);
    void* private_ro = mmap(nullptr, page, PROT_READ, MAP_PRIVATE, file, 0);
    call(private_ro, &sh[3]);
    return 0;
  });
  ASSERT_TRUE(child.ok()) << child.status();
  child->Start();
  int efaults = 0;
  Serve(*child, 4, &efaults);
  EXPECT_EQ(child->Wait(), 0);
  EXPECT_EQ(sh[0].last_errno, 0);
  EXPECT_GT(sh[0].totalram, 0u);
  EXPECT_EQ(sh[1].last_errno, EFAULT);
  EXPECT_EQ(sh[2].last_errno, EFAULT);
  if (ProcMemForces()) {
    EXPECT_EQ(sh[3].last_errno, 0);  // FOLL_FORCE: the task's private copy
    EXPECT_GT(sh[3].totalram, 0u);
    EXPECT_EQ(efaults, 2);
  } else {
    EXPECT_EQ(sh[3].last_errno, EFAULT);
    EXPECT_EQ(efaults, 3);
  }
  EXPECT_TRUE(FileUnchanged(file));
  close(file);
  munmap(sh, sizeof(Shared) * 4);
}

// A peer thread remaps the buffer's page while the main thread calls
// sysinfo 2000 times: anonymous read-write, unmapped, the file shared
// read-only, read-only, PROT_NONE, in turn. Every call returns 0 or EFAULT,
// the agent answers every one, the pages around the buffer (shared with the
// test) and the file keep their bytes, and a last call after the race gets
// its answer.
TEST(SysinfoWriteTest, RemappingRacerCannotRedirectTheWriteOrStopTheAgent) {
  constexpr int kCalls = 2000;
  const long page = Page();
  const int file = FileOfOnePage();
  ASSERT_GE(file, 0);
  auto* sh = static_cast<Shared*>(
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(sh, MAP_FAILED);
  new (sh) Shared;
  // Three pages shared with the child: canary, the racing page, canary.
  auto* area = static_cast<unsigned char*>(
      mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(area, MAP_FAILED);
  memset(area, kCanary, 3 * page);
  unsigned char* racing = area + page;
  auto child = testing::TrappedChild::Spawn({"sysinfo"}, [=] {
    std::atomic<bool> stop{false};
    std::thread racer([&] {
      for (unsigned i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        switch (i % 5) {
          case 0:
            mmap(racing, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
                 0);
            break;
          case 1:
            munmap(racing, page);
            break;
          case 2:
            mmap(racing, page, PROT_READ, MAP_SHARED | MAP_FIXED, file, 0);
            break;
          case 3:
            mmap(racing, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
                 0);
            mprotect(racing, page, PROT_READ);
            break;
          case 4:
            mprotect(racing, page, PROT_NONE);
            break;
        }
      }
    });
    // The struct ends at the second canary page: a write past it would show.
    void* buf = racing + page - sizeof(struct sysinfo);
    for (int i = 0; i < kCalls; ++i) {
      const long r = syscall(SYS_sysinfo, buf);
      if (r == 0) {
        ++sh->landed;
      } else if (errno == EFAULT) {
        ++sh->efault;
      } else {
        ++sh->other;
        sh->last_errno = errno;
      }
    }
    stop = true;
    racer.join();
    // After the race: a plain buffer gets its answer.
    struct sysinfo last;
    memset(&last, 0, sizeof(last));
    if (syscall(SYS_sysinfo, &last) != 0) return 2;
    sh->totalram = last.totalram;
    return 0;
  });
  ASSERT_TRUE(child.ok()) << child.status();
  child->Start();
  int efault_answers = 0;
  Serve(*child, kCalls + 1, &efault_answers);
  EXPECT_EQ(child->Wait(), 0);
  EXPECT_EQ(sh->other, 0) << "errno " << sh->last_errno;
  EXPECT_EQ(sh->landed + sh->efault, kCalls);
  EXPECT_EQ(sh->efault, efault_answers);
  EXPECT_GT(sh->totalram, 0u);
  size_t touched = 0;
  for (long i = 0; i < page; ++i) {
    touched += (area[i] != kCanary) + (area[2 * page + i] != kCanary);
  }
  EXPECT_EQ(touched, 0u) << "bytes of the pages around the buffer changed";
  EXPECT_TRUE(FileUnchanged(file)) << "the shared read-only file was written";
  printf("sysinfo race: %d calls, %d answered 0, %d EFAULT, 0 outside the task\n", kCalls,
         sh->landed, sh->efault);
  close(file);
  munmap(area, 3 * page);
  munmap(sh, sizeof(Shared));
}

}  // namespace
}  // namespace seccomp_agent::injector
