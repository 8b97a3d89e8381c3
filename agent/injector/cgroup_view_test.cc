// The cgroup view on fake v1 and v2 trees (the host runs one of them; the
// real one is read in integration/privileged_e2e_test), and the sysinfo
// struct built from it for both ABIs.
#include "agent/injector/cgroup_view.h"

#include <linux/audit.h>
#include <sys/sysinfo.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/common/status.h"
#include "agent/injector/privileged.h"
#include "gtest/gtest.h"

namespace seccomp_agent::injector {
namespace {

namespace fs = std::filesystem;

class FakeTree {
 public:
  FakeTree() {
    char tmpl[] = "/tmp/sa-cgview-XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  ~FakeTree() { fs::remove_all(root_); }
  void Put(const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(root_ + rel).parent_path());
    std::ofstream(root_ + rel) << text;
  }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

TEST(CgroupViewTest, V2TakesTheSmallestLimitUpTheTree) {
  FakeTree t;
  t.Put("/cgroup.controllers", "memory pids\n");
  t.Put("/kubepods/memory.max", "268435456\n");
  t.Put("/kubepods/ctr/memory.max", "max\n");  // a child without a limit
  t.Put("/kubepods/ctr/memory.current", "1048576\n");
  t.Put("/kubepods/ctr/memory.swap.max", "max\n");
  t.Put("/kubepods/ctr/memory.swap.current", "4096\n");
  t.Put("/kubepods/ctr/memory.stat", "anon 1\nshmem 8192\nfile 3\n");
  t.Put("/kubepods/ctr/pids.current", "7\n");
  auto m = ReadCgroupMemory("0::/kubepods/ctr\n", t.root());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->version, 2);
  EXPECT_EQ(m->mem_limit, std::optional<uint64_t>(268435456));
  EXPECT_EQ(m->mem_usage, 1048576u);
  EXPECT_FALSE(m->swap_limit.has_value());
  EXPECT_EQ(m->swap_usage, std::optional<uint64_t>(4096));
  EXPECT_EQ(m->shmem, 8192u);
  EXPECT_EQ(m->tasks, std::optional<uint64_t>(7));
}

TEST(CgroupViewTest, V1ReadsTheMemoryAndPidsControllers) {
  FakeTree t;
  t.Put("/memory/memory.limit_in_bytes", "9223372036854771712\n");
  t.Put("/memory/a/memory.limit_in_bytes", "268435456\n");
  t.Put("/memory/a/memory.usage_in_bytes", "2097152\n");
  t.Put("/memory/a/memory.memsw.limit_in_bytes", "402653184\n");
  t.Put("/memory/a/memory.memsw.usage_in_bytes", "3145728\n");
  t.Put("/memory/a/memory.stat", "cache 1\ntotal_shmem 4096\n");
  t.Put("/pids/p/pids.current", "3\n");
  auto m = ReadCgroupMemory("12:pids:/p\n4:memory:/a\n3:cpu,cpuacct:/c\n1:name=systemd:/s\n0::/u\n",
                            t.root());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->version, 1);
  EXPECT_EQ(m->mem_limit, std::optional<uint64_t>(268435456));
  EXPECT_EQ(m->mem_usage, 2097152u);
  EXPECT_EQ(m->swap_limit, std::optional<uint64_t>(402653184 - 268435456));
  EXPECT_EQ(m->swap_usage, std::optional<uint64_t>(1048576));
  EXPECT_EQ(m->shmem, 4096u);
  EXPECT_EQ(m->tasks, std::optional<uint64_t>(3));
}

TEST(CgroupViewTest, V1WithoutSwapAccountingHasNoSwap) {
  FakeTree t;
  t.Put("/memory/a/memory.limit_in_bytes", "9223372036854771712\n");
  t.Put("/memory/a/memory.usage_in_bytes", "1\n");
  auto m = ReadCgroupMemory("4:memory:/a\n", t.root());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(m->mem_limit.has_value());  // v1's "unlimited"
  EXPECT_FALSE(m->swap_usage.has_value());
  EXPECT_FALSE(m->tasks.has_value());
}

TEST(CgroupViewTest, OddPathsAreRefused) {
  FakeTree t;
  t.Put("/memory/a/memory.usage_in_bytes", "1\n");
  for (const char* text : {"4:memory:/a/../../etc\n", "4:memory:a\n", "4:memory:/a/./b\n",
                           "4:memory:/a (deleted)\n", "4:memory:/a//b\n", "garbage\n", "\n"}) {
    EXPECT_FALSE(ReadCgroupMemory(text, t.root()).ok()) << text;
  }
  FakeTree v2;
  v2.Put("/cgroup.controllers", "memory\n");
  EXPECT_FALSE(ReadCgroupMemory("4:memory:/a\n", v2.root()).ok());  // no 0:: line
  EXPECT_FALSE(ReadCgroupMemory("0::/..\n", v2.root()).ok());
}

struct sysinfo Host() {
  struct sysinfo h;
  memset(&h, 0, sizeof(h));
  h.totalram = 4096;  // x 4 MiB = 16 GiB
  h.totalswap = 256;  // 1 GiB
  h.mem_unit = 4 << 20;
  h.loads[0] = 65536;
  return h;
}

TEST(BuildSysinfoTest, X86_64ShowsTheLimitAndUsage) {
  CgroupMemory cg;
  cg.mem_limit = 256 << 20;
  cg.mem_usage = 16 << 20;
  cg.swap_usage = 0;
  cg.swap_limit = 64 << 20;
  cg.shmem = 4096;
  cg.tasks = 70000;  // more than procs can hold
  auto b = BuildSysinfo(AUDIT_ARCH_X86_64, cg, Host(), 42);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(b->size(), sizeof(struct sysinfo));
  struct sysinfo s;
  memcpy(&s, b->data(), sizeof(s));
  EXPECT_EQ(s.uptime, 42);
  EXPECT_EQ(s.mem_unit, 1u);
  EXPECT_EQ(s.totalram, 256u << 20);
  EXPECT_EQ(s.freeram, 240u << 20);
  EXPECT_EQ(s.sharedram, 4096u);
  EXPECT_EQ(s.totalswap, 64u << 20);
  EXPECT_EQ(s.freeswap, 64u << 20);
  EXPECT_EQ(s.procs, 0xffff);
  EXPECT_EQ(s.loads[0], 65536u);
}

TEST(BuildSysinfoTest, NoLimitMeansTheHostAndUsageNeverExceedsTotal) {
  CgroupMemory cg;
  cg.mem_usage = uint64_t{32} << 30;  // more than the host's 16 GiB
  auto b = BuildSysinfo(AUDIT_ARCH_X86_64, cg, Host(), 1);
  ASSERT_TRUE(b.ok());
  struct sysinfo s;
  memcpy(&s, b->data(), sizeof(s));
  EXPECT_EQ(s.totalram, uint64_t{16} << 30);
  EXPECT_EQ(s.freeram, 0u);
  EXPECT_EQ(s.totalswap, 0u);  // swap not accounted: none shown
}

TEST(BuildSysinfoTest, I386LayoutScalesToFit32Bits) {
  CgroupMemory cg;  // no limit: the host's 16 GiB does not fit 32 bits
  cg.mem_usage = uint64_t{1} << 30;
  auto b = BuildSysinfo(AUDIT_ARCH_I386, cg, Host(), 7);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 64u);
  uint32_t w[16];
  memcpy(w, b->data(), 64);
  const uint32_t unit = w[13];  // after uptime, loads[3], 6 sizes, procs+pad, 2 high
  EXPECT_EQ(w[0], 7u);
  ASSERT_GE(unit, 4u);
  EXPECT_EQ(uint64_t{w[4]} * unit, uint64_t{16} << 30);  // totalram
  EXPECT_EQ(uint64_t{w[5]} * unit, uint64_t{15} << 30);  // freeram
  EXPECT_EQ(ErrnoOf(BuildSysinfo(0x12345678, cg, Host(), 7).status()), ENOSYS);
}

}  // namespace
}  // namespace seccomp_agent::injector
