#include "agent/injector/substitute.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/common/status.h"

namespace seccomp_agent::injector {
namespace {

absl::Status RuleError(int err, absl::string_view rule, absl::string_view detail) {
  return ErrnoStatus(err, absl::StrCat("substitute rule ", rule, ": ", detail));
}

std::string Abbrev(std::string_view bytes, size_t max = 48) {
  std::string_view head = bytes.substr(0, max);
  std::string s = absl::CHexEscape(absl::string_view(head.data(), head.size()));
  if (bytes.size() > max) absl::StrAppend(&s, "...(", bytes.size(), " bytes)");
  return s;
}

}  // namespace

int PointerArg(int64_t nr) {
  switch (nr) {
    case __NR_openat:
    case __NR_bind:
    case __NR_write:
      return 1;
    case __NR_open:
      return 0;
    default:
      return -1;
  }
}

Substitute Substitute::Openat(int dirfd, std::string_view path, int flags, mode_t mode) {
  Substitute s;
  s.nr = __NR_openat;
  s.buf.assign(path.data(), path.size());
  s.buf.push_back('\0');
  // dirfd travels as the 32-bit int the kernel reads (AT_FDCWD stays -100).
  s.args[0] = static_cast<uint64_t>(static_cast<int64_t>(dirfd));
  s.args[1] = 0;
  s.args[2] = static_cast<uint32_t>(flags);
  s.args[3] = mode;
  s.args_in_buf_mask = 1u << 1;
  return s;
}

Substitute Substitute::Open(std::string_view path, int flags, mode_t mode) {
  Substitute s;
  s.nr = __NR_open;
  s.buf.assign(path.data(), path.size());
  s.buf.push_back('\0');
  s.args[0] = 0;
  s.args[1] = static_cast<uint32_t>(flags);
  s.args[2] = mode;
  s.args_in_buf_mask = 1u << 0;
  return s;
}

Substitute Substitute::Bind(int sockfd, std::string_view sockaddr_bytes) {
  Substitute s;
  s.nr = __NR_bind;
  s.buf.assign(sockaddr_bytes.data(), sockaddr_bytes.size());
  s.args[0] = static_cast<uint64_t>(static_cast<int64_t>(sockfd));
  s.args[1] = 0;
  s.args[2] = sockaddr_bytes.size();
  s.args_in_buf_mask = 1u << 1;
  return s;
}

Substitute Substitute::Write(int fd, std::string_view bytes, std::optional<uint64_t> task_count) {
  Substitute s;
  s.nr = __NR_write;
  s.buf.assign(bytes.data(), bytes.size());
  s.args[0] = static_cast<uint64_t>(static_cast<int64_t>(fd));
  s.args[1] = 0;
  s.args[2] = bytes.size();
  s.args_in_buf_mask = 1u << 1;
  s.task_count = task_count;
  return s;
}

std::string Substitute::DebugString() const {
  auto ptr = [this](int i) -> std::string_view {
    if (!(args_in_buf_mask & (1u << i)) || args[i] > buf.size()) return "<bad offset>";
    return std::string_view(buf).substr(args[i]);
  };
  switch (nr) {
    case __NR_openat: {
      std::string_view p = ptr(1);
      p = p.substr(0, p.find('\0'));
      return absl::StrFormat("openat(%d, \"%s\", %#x, %#o)", static_cast<int>(args[0]),
                             Abbrev(p, 256), args[2], args[3]);
    }
    case __NR_open: {
      std::string_view p = ptr(0);
      p = p.substr(0, p.find('\0'));
      return absl::StrFormat("open(\"%s\", %#x, %#o)", Abbrev(p, 256), args[1], args[2]);
    }
    case __NR_bind:
      return absl::StrFormat("bind(%d, \"%s\", %d)", static_cast<int>(args[0]),
                             Abbrev(ptr(1).substr(0, args[2])), args[2]);
    case __NR_write:
      return absl::StrFormat("write(%d, \"%s\", %d)", static_cast<int>(args[0]),
                             Abbrev(ptr(1).substr(0, args[2])), args[2]);
    default:
      return absl::StrFormat("syscall %d(%#x, %#x, %#x, ...)", nr, args[0], args[1], args[2]);
  }
}

absl::Status Validate(const Substitute& s, int64_t trapped_nr, uint32_t trapped_arch,
                      Ruleset rules) {
  // 1. Whitelist, native ABI only.
  bool listed = s.nr == __NR_openat || s.nr == __NR_bind || s.nr == __NR_write ||
                (rules == Ruleset::kEmulation && s.nr == __NR_open);
  if (!listed) {
    return RuleError(
        EOPNOTSUPP, "whitelist",
        absl::StrCat(
            "syscall ", s.nr, " cannot be injected (",
            rules == Ruleset::kKernel ? "openat, bind, write" : "openat, open, bind, write", ")"));
  }
  if (trapped_arch != AUDIT_ARCH_X86_64) {
    return RuleError(EOPNOTSUPP, "native-abi",
                     absl::StrFormat("trap arch %#x is not the native x86_64 ABI", trapped_arch));
  }
  // 2. Mask bits name args[0..5] only.
  if (s.args_in_buf_mask & ~0x3fu) {
    return RuleError(
        EINVAL, "mask-range",
        absl::StrFormat("args_in_buf_mask %#x has bits beyond args[0..5]", s.args_in_buf_mask));
  }
  // 3. Size cap.
  if (s.buf.size() > SECCOMP_NOTIF_INJECT_MAX_BYTES) {
    return RuleError(
        E2BIG, "size-cap",
        absl::StrCat("buf_size ", s.buf.size(), " > ", SECCOMP_NOTIF_INJECT_MAX_BYTES));
  }
  // 5. Offsets inside buf.
  for (int i = 0; i < 6; i++) {
    if ((s.args_in_buf_mask & (1u << i)) && s.args[i] > s.buf.size()) {
      return RuleError(
          EINVAL, "offset",
          absl::StrCat("args[", i, "] offset ", s.args[i], " > buf_size ", s.buf.size()));
    }
  }
  // 6. Exactly the pointer argument lives in buf.
  const int p = PointerArg(s.nr);
  if (s.args_in_buf_mask != (1u << p)) {
    return RuleError(EINVAL, "mask-pointer",
                     absl::StrFormat("args_in_buf_mask must be exactly %#x (args[%d]), got %#x",
                                     1u << p, p, s.args_in_buf_mask));
  }
  const uint64_t off = s.args[p];
  const uint64_t room = s.buf.size() - off;
  // 7. Lengths inside buf.
  if (s.nr == __NR_bind) {
    const uint64_t len = s.args[2];
    if (len > sizeof(struct sockaddr_storage)) {
      return RuleError(EINVAL, "addrlen",
                       absl::StrCat("addrlen ", len, " > sizeof(sockaddr_storage)"));
    }
    if (len > room) {
      return RuleError(EINVAL, "addrlen",
                       absl::StrCat("addrlen ", len, " runs past buf (", room, " bytes left)"));
    }
  }
  if (s.nr == __NR_write && s.args[2] > room) {
    return RuleError(EINVAL, "count",
                     absl::StrCat("count ", s.args[2], " runs past buf (", room, " bytes left)"));
  }
  // 8. The path ends inside buf.
  if ((s.nr == __NR_openat || s.nr == __NR_open) &&
      memchr(s.buf.data() + off, '\0', room) == nullptr) {
    return RuleError(EINVAL, "path-nul", "pathname has no NUL inside buf");
  }
  // 9. Same syscall as the trap.
  if (s.nr != trapped_nr) {
    return RuleError(ESRCH, "same-nr",
                     absl::StrCat("substitute nr ", s.nr, " != trapped nr ", trapped_nr));
  }
  return absl::OkStatus();
}

struct seccomp_notif_inject ToKernelStruct(const Substitute& s, uint64_t id) {
  struct seccomp_notif_inject inj;
  memset(&inj, 0, sizeof(inj));
  inj.id = id;
  inj.nr = static_cast<uint64_t>(s.nr);
  for (int i = 0; i < 6; i++) inj.args[i] = s.args[i];
  inj.buf = s.buf.empty() ? 0 : reinterpret_cast<uintptr_t>(s.buf.data());
  inj.buf_size = static_cast<uint32_t>(s.buf.size());
  inj.args_in_buf_mask = s.args_in_buf_mask;
  return inj;
}

}  // namespace seccomp_agent::injector
