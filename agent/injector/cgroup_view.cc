#include "agent/injector/cgroup_view.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/common/read_file.h"
#include "agent/common/status.h"

namespace seccomp_agent::injector {
namespace {

// v1's "no limit" is PAGE_COUNTER_MAX pages; anything this large is none.
constexpr uint64_t kNoLimit = uint64_t{1} << 62;

// A cgroup or /proc text, at most 1 MiB, never through a final symlink.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::string text;
  SA_RETURN_IF_ERROR(ReadWholeFile(AT_FDCWD, path.c_str(), text, 1 << 20, O_NOFOLLOW));
  return text;
}

// A number file ("max" -> none). Missing file: NotFound.
absl::StatusOr<std::optional<uint64_t>> ReadNumber(const std::string& path) {
  SA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  absl::string_view t = absl::StripAsciiWhitespace(text);
  if (t == "max") return std::optional<uint64_t>();
  uint64_t v = 0;
  if (!absl::SimpleAtoi(t, &v)) {
    return ErrnoStatus(EINVAL, absl::StrCat(path, ": not a number: ", t));
  }
  if (v >= kNoLimit) return std::optional<uint64_t>();
  return std::optional<uint64_t>(v);
}

// The key's value in a memory.stat file, 0 when absent.
uint64_t StatValue(const std::string& dir, absl::string_view key) {
  absl::StatusOr<std::string> text = ReadSmallFile(dir + "/memory.stat");
  if (!text.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ' ');
    uint64_t v = 0;
    if (kv.first == key && absl::SimpleAtoi(kv.second, &v)) return v;
  }
  return 0;
}

// A cgroup path from the kernel, checked: absolute, no "." or ".." or
// empty components (a deleted cgroup's " (deleted)" suffix is refused).
absl::Status CheckCgroupPath(absl::string_view p) {
  if (p.empty() || p[0] != '/') return ErrnoStatus(EINVAL, absl::StrCat("cgroup path ", p));
  if (p == "/") return absl::OkStatus();
  for (absl::string_view c : absl::StrSplit(p.substr(1), '/')) {
    if (c.empty() || c == "." || c == ".." || absl::StrContains(c, " (deleted)")) {
      return ErrnoStatus(EINVAL, absl::StrCat("cgroup path ", p));
    }
  }
  return absl::OkStatus();
}

std::string Parent(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : p.substr(0, slash);
}

// The smallest limit in `file` from `dir`'s cgroup up to `base`.
std::optional<uint64_t> MinLimitUpTo(const std::string& base, std::string rel,
                                     const std::string& file) {
  std::optional<uint64_t> best;
  for (;;) {
    absl::StatusOr<std::optional<uint64_t>> v =
        ReadNumber(base + (rel == "/" ? "" : rel) + "/" + file);
    if (v.ok() && v->has_value() && (!best || **v < *best)) best = **v;
    if (rel == "/") return best;
    rel = Parent(rel);
  }
}

struct ProcCgroup {
  std::string unified;       // the "0::" line's path
  std::string memory, pids;  // v1 controllers' paths
};

absl::StatusOr<ProcCgroup> ParseProcCgroup(absl::string_view text) {
  ProcCgroup pc;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (f.size() != 3) return ErrnoStatus(EINVAL, absl::StrCat("/proc cgroup line: ", line));
    if (f[0] == "0" && f[1].empty()) pc.unified = std::string(f[2]);
    for (absl::string_view c : absl::StrSplit(f[1], ',')) {
      if (c == "memory") pc.memory = std::string(f[2]);
      if (c == "pids") pc.pids = std::string(f[2]);
    }
  }
  return pc;
}

absl::StatusOr<CgroupMemory> ReadV2(const std::string& root, const std::string& path) {
  SA_RETURN_IF_ERROR(CheckCgroupPath(path));
  CgroupMemory m;
  m.version = 2;
  m.path = path;
  const std::string dir = root + (path == "/" ? "" : path);
  m.mem_limit = MinLimitUpTo(root, path, "memory.max");
  absl::StatusOr<std::optional<uint64_t>> cur = ReadNumber(dir + "/memory.current");
  if (!cur.ok()) return cur.status();  // no memory controller here: nothing to say
  m.mem_usage = cur->value_or(0);
  m.swap_limit = MinLimitUpTo(root, path, "memory.swap.max");
  absl::StatusOr<std::optional<uint64_t>> swap = ReadNumber(dir + "/memory.swap.current");
  if (swap.ok()) m.swap_usage = swap->value_or(0);
  m.shmem = StatValue(dir, "shmem");
  absl::StatusOr<std::optional<uint64_t>> tasks = ReadNumber(dir + "/pids.current");
  if (tasks.ok() && tasks->has_value()) m.tasks = **tasks;
  return m;
}

absl::StatusOr<CgroupMemory> ReadV1(const std::string& root, const ProcCgroup& pc) {
  if (pc.memory.empty()) return ErrnoStatus(ENOENT, "no memory cgroup (v1) for the task");
  SA_RETURN_IF_ERROR(CheckCgroupPath(pc.memory));
  CgroupMemory m;
  m.version = 1;
  m.path = pc.memory;
  const std::string base = root + "/memory";
  const std::string dir = base + (pc.memory == "/" ? "" : pc.memory);
  m.mem_limit = MinLimitUpTo(base, pc.memory, "memory.limit_in_bytes");
  SA_ASSIGN_OR_RETURN(std::optional<uint64_t> usage, ReadNumber(dir + "/memory.usage_in_bytes"));
  m.mem_usage = usage.value_or(0);
  // memsw = memory + swap (present only with swap accounting).
  absl::StatusOr<std::optional<uint64_t>> memsw = ReadNumber(dir + "/memory.memsw.usage_in_bytes");
  if (memsw.ok()) {
    m.swap_usage = memsw->value_or(0) > m.mem_usage ? memsw->value_or(0) - m.mem_usage : 0;
    std::optional<uint64_t> lim = MinLimitUpTo(base, pc.memory, "memory.memsw.limit_in_bytes");
    if (lim && m.mem_limit) m.swap_limit = *lim > *m.mem_limit ? *lim - *m.mem_limit : 0;
  }
  m.shmem = StatValue(dir, "total_shmem");
  if (!pc.pids.empty() && CheckCgroupPath(pc.pids).ok()) {
    absl::StatusOr<std::optional<uint64_t>> t =
        ReadNumber(root + "/pids" + (pc.pids == "/" ? "" : pc.pids) + "/pids.current");
    if (t.ok() && t->has_value()) m.tasks = **t;
  }
  return m;
}

}  // namespace

absl::StatusOr<CgroupMemory> ReadCgroupMemory(absl::string_view proc_cgroup,
                                              const std::string& fs_root) {
  SA_ASSIGN_OR_RETURN(ProcCgroup pc, ParseProcCgroup(proc_cgroup));
  if (access((fs_root + "/cgroup.controllers").c_str(), F_OK) == 0) {
    if (pc.unified.empty()) return ErrnoStatus(ENOENT, "no cgroup v2 line for the task");
    return ReadV2(fs_root, pc.unified);
  }
  return ReadV1(fs_root, pc);
}

absl::StatusOr<CgroupMemory> ReadTaskCgroupMemory(pid_t tid, const std::string& fs_root) {
  SA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(absl::StrCat("/proc/", tid, "/cgroup")));
  return ReadCgroupMemory(text, fs_root);
}

}  // namespace seccomp_agent::injector
