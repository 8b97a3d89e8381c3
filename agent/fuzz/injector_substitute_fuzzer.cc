// Fuzzes the injector's substitute validator (agent/injector/substitute.h,
// Validate) and the helpers around it (DebugString, ToKernelStruct, the
// builders). Substitutes come from policies and from plugins.
//
// Input: a fixed 82-byte header, then the substitute's buf:
//   u8 flags (bit0: kEmulation rule set; bit1: task_count present)
//   i64 nr | u64 args[6] | u32 args_in_buf_mask | i64 trapped_nr |
//   u32 trapped_arch | u64 task_count | u8 builder selector
// (little-endian; seeds: agent/fuzz/make_seeds.py).
//
// Properties checked (besides ASan/UBSan):
//  * Accepted: nr is whitelisted and equals the trapped nr, the arch is
//    x86_64, the mask is exactly the pointer argument's bit, the lengths
//    (bind addrlen <= 128, write count) and the path's NUL lie inside buf.
//  * Refused: the errno is one the kernel's INJECT gives (EOPNOTSUPP,
//    EINVAL, E2BIG, ESRCH) and the message names the rule.
//  * The builders (Openat, Open, Bind, Write) produce substitutes that
//    validate for their own syscall.
#include <fcntl.h>
#include <linux/audit.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "agent/common/status.h"
#include "agent/injector/substitute.h"

namespace {

namespace inj = seccomp_agent::injector;

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "injector_substitute_fuzzer: property violated: %s\n", what);
    abort();
  }
}

template <typename T>
T Read(const uint8_t*& p) {
  T v;
  memcpy(&v, p, sizeof(v));
  p += sizeof(v);
  return v;
}

constexpr size_t kHeader = 1 + 8 + 48 + 4 + 8 + 4 + 8 + 1;

void CheckRefusal(const absl::Status& st) {
  const int e = seccomp_agent::ErrnoOf(st);
  Check(e == EOPNOTSUPP || e == EINVAL || e == E2BIG || e == ESRCH, "unexpected errno");
  Check(absl::StartsWith(st.message(), "substitute rule "), "message does not name the rule");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeader) return 0;
  const uint8_t* p = data;
  const uint8_t flags = Read<uint8_t>(p);
  inj::Substitute s;
  s.nr = Read<int64_t>(p);
  for (uint64_t& a : s.args) a = Read<uint64_t>(p);
  s.args_in_buf_mask = Read<uint32_t>(p);
  const int64_t trapped_nr = Read<int64_t>(p);
  const uint32_t trapped_arch = Read<uint32_t>(p);
  const uint64_t task_count = Read<uint64_t>(p);
  const uint8_t builder = Read<uint8_t>(p);
  if (flags & 2) s.task_count = task_count;
  s.buf.assign(reinterpret_cast<const char*>(p), size - kHeader);
  const inj::Ruleset rules = (flags & 1) ? inj::Ruleset::kEmulation : inj::Ruleset::kKernel;

  const absl::Status st = inj::Validate(s, trapped_nr, trapped_arch, rules);
  if (st.ok()) {
    Check(s.nr == trapped_nr, "accepted another nr than the trapped one");
    Check(trapped_arch == AUDIT_ARCH_X86_64, "accepted a non-native arch");
    const int ptr = inj::PointerArg(s.nr);
    Check(ptr >= 0, "accepted a non-whitelisted nr");
    Check(rules == inj::Ruleset::kEmulation || s.nr != __NR_open, "kernel rules accepted open");
    Check(s.args_in_buf_mask == (1u << ptr), "mask is not exactly the pointer argument");
    Check(s.buf.size() <= SECCOMP_NOTIF_INJECT_MAX_BYTES, "buf over the cap");
    const uint64_t off = s.args[ptr];
    Check(off <= s.buf.size(), "offset outside buf");
    const uint64_t room = s.buf.size() - off;
    if (s.nr == __NR_bind) Check(s.args[2] <= 128 && s.args[2] <= room, "addrlen outside buf");
    if (s.nr == __NR_write) Check(s.args[2] <= room, "count outside buf");
    if (s.nr == __NR_openat || s.nr == __NR_open) {
      Check(memchr(s.buf.data() + off, '\0', room) != nullptr, "path without NUL accepted");
    }
  } else {
    CheckRefusal(st);
  }
  (void)s.DebugString();
  const struct seccomp_notif_inject k = inj::ToKernelStruct(s, 1);
  Check(k.buf_size == s.buf.size() && k.args_in_buf_mask == s.args_in_buf_mask, "kernel struct");

  // Builders: each must validate for its own syscall (documented).
  std::string_view bytes(s.buf);
  inj::Substitute b;
  int64_t nr = 0;
  switch (builder % 4) {
    case 0:
      b = inj::Substitute::Openat(static_cast<int>(s.args[0]), bytes, static_cast<int>(s.args[2]),
                                  static_cast<mode_t>(s.args[3]));
      nr = __NR_openat;
      break;
    case 1:
      b = inj::Substitute::Open(bytes, static_cast<int>(s.args[1]), static_cast<mode_t>(s.args[2]));
      nr = __NR_open;
      break;
    case 2:
      if (bytes.size() > 128) bytes = bytes.substr(0, 128);
      b = inj::Substitute::Bind(static_cast<int>(s.args[0]), bytes);
      nr = __NR_bind;
      break;
    default:
      b = inj::Substitute::Write(static_cast<int>(s.args[0]), bytes, s.task_count);
      nr = __NR_write;
      break;
  }
  const absl::Status bs = inj::Validate(b, nr, AUDIT_ARCH_X86_64, inj::Ruleset::kEmulation);
  if (!bs.ok()) fprintf(stderr, "builder output refused: %s\n", std::string(bs.message()).c_str());
  Check(bs.ok(), "a builder produced a substitute Validate refuses");
  (void)b.DebugString();
  return 0;
}
