#include "agent/policy/privileged_rules.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"

namespace seccomp_agent {

bool SysinfoAppliesTo(absl::string_view s) { return s == "sysinfo"; }
bool MknodAppliesTo(absl::string_view s) { return s == "mknod" || s == "mknodat"; }

std::optional<ActionProblem> CheckSysinfo(const v1::Sysinfo& s) {
  if (!s.from_cgroup()) {
    return ActionProblem{"from_cgroup", "must be true (the container's cgroup is the only source)"};
  }
  return std::nullopt;
}

std::optional<ActionProblem> CheckMknod(const v1::Mknod& m) {
  if (m.allow().empty()) {
    return ActionProblem{"allow", "needs at least one device (use deny to refuse every mknod)"};
  }
  for (int i = 0; i < m.allow_size(); ++i) {
    const v1::DeviceNode& d = m.allow(i);
    const std::string at = absl::StrCat("allow[", i, "]");
    if (d.type() != "c" && d.type() != "b") {
      return ActionProblem{at + ".type",
                           absl::StrCat("must be \"c\" or \"b\", got \"", d.type(), "\"")};
    }
    if (d.major() > kMaxDeviceMajor) {
      return ActionProblem{at + ".major",
                           absl::StrCat(d.major(), " is larger than ", kMaxDeviceMajor)};
    }
    if (d.minor() > kMaxDeviceMinor) {
      return ActionProblem{at + ".minor",
                           absl::StrCat(d.minor(), " is larger than ", kMaxDeviceMinor)};
    }
  }
  return std::nullopt;
}

DeviceRequest DecodeMknod(uint64_t mode_arg, uint64_t dev_arg) {
  DeviceRequest r;
  const mode_t type = static_cast<mode_t>(mode_arg) & S_IFMT;
  if (type == S_IFCHR) r.type = 'c';
  if (type == S_IFBLK) r.type = 'b';
  // The syscall takes an unsigned int dev (fs/namei.c: new_decode_dev).
  const uint32_t dev = static_cast<uint32_t>(dev_arg);
  r.major = (dev & 0xfff00u) >> 8;
  r.minor = (dev & 0xffu) | ((dev >> 12) & 0xfff00u);
  return r;
}

const v1::DeviceNode* FindAllowedDevice(const v1::Mknod& m, const DeviceRequest& req) {
  if (req.type == 0) return nullptr;
  for (const v1::DeviceNode& d : m.allow()) {
    if (d.type().size() == 1 && d.type()[0] == req.type && d.major() == req.major &&
        d.minor() == req.minor) {
      return &d;
    }
  }
  return nullptr;
}

std::string DeviceText(const DeviceRequest& req) {
  if (req.type == 0) return "not a device";
  return absl::StrCat(std::string(1, req.type), " ", req.major, ":", req.minor);
}

}  // namespace seccomp_agent
