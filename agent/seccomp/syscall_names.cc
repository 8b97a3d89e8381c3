#include "agent/seccomp/syscall_names.h"

#include <linux/audit.h>
#include <seccomp.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "absl/strings/str_cat.h"

namespace seccomp_agent {
namespace {

struct Cache {
  std::mutex mu;
  std::unordered_map<uint64_t, std::unique_ptr<std::string>> names;
};

Cache& GetCache() {
  static Cache* c = new Cache();
  return *c;
}

// Lock-free fast path for the native arch: a fixed table filled on first use.
constexpr int kNativeMax = 512;
struct NativeTable {
  std::string names[kNativeMax];
  NativeTable() {
    for (int nr = 0; nr < kNativeMax; ++nr) {
      char* n = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
      names[nr] = n ? n : absl::StrCat("syscall_", nr);
      free(n);
    }
  }
};

}  // namespace

const std::string& SyscallName(uint32_t arch, int nr) {
  if (IsNativeArch(arch) && nr >= 0 && nr < kNativeMax) {
    static const NativeTable* table = new NativeTable();
    return table->names[nr];
  }
  Cache& c = GetCache();
  uint64_t key = (static_cast<uint64_t>(arch) << 32) | static_cast<uint32_t>(nr);
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.names.find(key);
  if (it != c.names.end()) return *it->second;
  char* n = seccomp_syscall_resolve_num_arch(arch, nr);
  auto s = std::make_unique<std::string>(n ? n : absl::StrCat("syscall_", nr));
  free(n);
  return *c.names.emplace(key, std::move(s)).first->second;
}

bool IsNativeArch(uint32_t arch) {
  static const uint32_t native = seccomp_arch_native();
  return arch == native;
}

}  // namespace seccomp_agent
