#include "agent/policy/privileged_rules.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/policy/glob.h"

namespace seccomp_agent {

bool SysinfoAppliesTo(absl::string_view s) { return s == "sysinfo"; }
bool MknodAppliesTo(absl::string_view s) { return s == "mknod" || s == "mknodat"; }
bool MountAppliesTo(absl::string_view s) { return s == "mount"; }
bool SetxattrAppliesTo(absl::string_view s) {
  return s == "setxattr" || s == "lsetxattr" || s == "fsetxattr";
}

namespace {

// File systems that need no device and no network: creating one cannot
// block and reads nothing the task names.
constexpr absl::string_view kMountableTypes[] = {"proc", "sysfs", "tmpfs", "mqueue"};

bool IsOptionName(absl::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char ch : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '_') return false;
  }
  return true;
}

// The mount(2) flags a task may pass (they map to mount attributes or
// change nothing); MS_MGC_VAL in the upper half is the old magic.
struct FlagAttr {
  uint64_t flag;
  uint64_t attr;
};
constexpr FlagAttr kAllowedFlags[] = {
    {MS_RDONLY, MOUNT_ATTR_RDONLY},
    {MS_NOSUID, MOUNT_ATTR_NOSUID},
    {MS_NODEV, MOUNT_ATTR_NODEV},
    {MS_NOEXEC, MOUNT_ATTR_NOEXEC},
    {MS_NOATIME, MOUNT_ATTR_NOATIME},
    {MS_NODIRATIME, MOUNT_ATTR_NODIRATIME},
    {MS_RELATIME, MOUNT_ATTR_RELATIME},
    {MS_STRICTATIME, MOUNT_ATTR_STRICTATIME},
    {MS_SILENT, 0},
};

std::string FlagName(uint64_t bit) {
  switch (bit) {
    case MS_BIND:
      return "MS_BIND";
    case MS_REMOUNT:
      return "MS_REMOUNT";
    case MS_MOVE:
      return "MS_MOVE";
    case MS_REC:
      return "MS_REC";
    case MS_SHARED:
      return "MS_SHARED";
    case MS_PRIVATE:
      return "MS_PRIVATE";
    case MS_SLAVE:
      return "MS_SLAVE";
    case MS_UNBINDABLE:
      return "MS_UNBINDABLE";
    case MS_SYNCHRONOUS:
      return "MS_SYNCHRONOUS";
    case MS_DIRSYNC:
      return "MS_DIRSYNC";
    case MS_MANDLOCK:
      return "MS_MANDLOCK";
    case MS_LAZYTIME:
      return "MS_LAZYTIME";
    case MS_NOATIME:
      return "MS_NOATIME";
    case MS_NODIRATIME:
      return "MS_NODIRATIME";
    case MS_RELATIME:
      return "MS_RELATIME";
    case MS_STRICTATIME:
      return "MS_STRICTATIME";
    default:
      return absl::StrCat("0x", absl::Hex(bit));
  }
}

}  // namespace

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

namespace {

std::optional<ActionProblem> CheckBindEntry(const v1::MountType& t, const std::string& at) {
  if (!t.fstype().empty() || !t.options().empty()) {
    return ActionProblem{at + ".bind", "a bind entry has no fstype and no options"};
  }
  for (const auto& [field, glob] :
       {std::pair{"from_glob", &t.bind().from_glob()}, {"to_glob", &t.bind().to_glob()}}) {
    const std::string where = absl::StrCat(at, ".bind.", field);
    if (glob->empty() || (*glob)[0] != '/') {
      return ActionProblem{where, "must be an absolute path glob"};
    }
    absl::StatusOr<PathGlob> g = PathGlob::Compile(*glob);
    if (!g.ok()) return ActionProblem{where, std::string(g.status().message())};
  }
  return std::nullopt;
}

}  // namespace

std::optional<ActionProblem> CheckMount(const v1::Mount& m) {
  if (m.allow().empty()) {
    return ActionProblem{"allow",
                         "needs at least one file system type (use deny to refuse every mount)"};
  }
  for (int i = 0; i < m.allow_size(); ++i) {
    const v1::MountType& t = m.allow(i);
    const std::string at = absl::StrCat("allow[", i, "]");
    if (t.has_bind()) {
      if (std::optional<ActionProblem> p = CheckBindEntry(t, at)) return p;
      continue;
    }
    bool known = false;
    for (absl::string_view k : kMountableTypes) known |= t.fstype() == k;
    if (!known) {
      return ActionProblem{
          at + ".fstype",
          absl::StrCat("\"", t.fstype(),
                       "\" is not one the agent mounts (proc, sysfs, tmpfs, mqueue)")};
    }
    for (int j = 0; j < t.options_size(); ++j) {
      if (!IsOptionName(t.options(j)) || t.options(j) == "source" || t.options(j) == "subset") {
        return ActionProblem{absl::StrCat(at, ".options[", j, "]"),
                             absl::StrCat("\"", t.options(j),
                                          "\" is not an option name a task may set (letters, "
                                          "digits, _; not source or subset)")};
      }
    }
    // A fresh sysfs has writable attributes that a uid-0 task without
    // capabilities may write (DAC only, e.g. /sys/power/state).
    if (t.fstype() == "sysfs" && !t.readonly()) {
      return ActionProblem{at + ".readonly", "must be true for sysfs"};
    }
  }
  return std::nullopt;
}

MountVerdict DecideMount(const v1::Mount& m, const MountCall& call) {
  MountVerdict v;
  uint64_t flags = call.flags;
  if ((flags & 0xffff0000u) == MS_MGC_VAL) flags &= 0xffffu;
  // The flags first: a bind, move or remount is refused whatever the type.
  MountPlan plan;
  plan.attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  for (uint64_t bit = 1; bit != 0 && flags != 0; bit <<= 1) {
    if (!(flags & bit)) continue;
    flags &= ~bit;
    bool ok = false;
    for (const FlagAttr& f : kAllowedFlags) {
      if (f.flag == bit) {
        plan.attrs |= f.attr;
        ok = true;
      }
    }
    if (!ok) {
      v.refusal = absl::StrCat("flag ", FlagName(bit), " is not allowed");
      return v;
    }
  }
  const v1::MountType* entry = nullptr;
  for (const v1::MountType& t : m.allow()) {
    if (t.fstype() == call.fstype) entry = &t;
  }
  if (entry == nullptr) {
    v.refusal = absl::StrCat("fstype ", absl::CEscape(call.fstype), " is not in the allow list");
    return v;
  }
  plan.entry = entry;
  if (entry->readonly()) plan.attrs |= MOUNT_ATTR_RDONLY;
  // Only one atime mode (relatime is the kernel's default).
  if (plan.attrs & MOUNT_ATTR_STRICTATIME) plan.attrs &= ~uint64_t{MOUNT_ATTR_RELATIME};
  if (plan.attrs & MOUNT_ATTR_NOATIME) {
    plan.attrs &= ~uint64_t{MOUNT_ATTR_RELATIME | MOUNT_ATTR_STRICTATIME};
  }
  if (call.data.size() > 4095) {
    v.refusal = "data is longer than 4095 bytes";
    return v;
  }
  for (absl::string_view opt : absl::StrSplit(call.data, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(opt, absl::MaxSplits('=', 1));
    bool listed = false;
    for (const std::string& o : entry->options()) listed |= o == kv.first;
    if (!listed || !IsOptionName(kv.first)) {
      v.refusal =
          absl::StrCat("option ", absl::CEscape(kv.first), " is not listed for ", entry->fstype());
      return v;
    }
    plan.options.push_back(std::move(kv));
  }
  // A fresh procfs has no runtime masks: /proc/sys, /proc/sysrq-trigger
  // and the rest would be writable by a uid-0 task without capabilities.
  // Only the pid directories are mounted.
  if (entry->fstype() == "proc") plan.options.emplace_back("subset", "pid");
  v.plan = std::move(plan);
  return v;
}

std::optional<ActionProblem> CheckSetxattr(const v1::Setxattr& x) {
  if (x.allow_names().empty()) {
    return ActionProblem{"allow_names",
                         "needs at least one name glob (use deny to refuse every setxattr)"};
  }
  for (int i = 0; i < x.allow_names_size(); ++i) {
    const std::string& g = x.allow_names(i);
    const std::string at = absl::StrCat("allow_names[", i, "]");
    // Only the trusted namespace needs the agent's privilege; user.* is the
    // task's own business, and security.* (file capabilities, LSM labels)
    // or system.* (ACLs) set by the agent would hand out privilege.
    if (!absl::StartsWith(g, kTrustedPrefix) || g.size() == kTrustedPrefix.size()) {
      return ActionProblem{at, absl::StrCat("\"", absl::CEscape(g),
                                            "\" must start with \"trusted.\" and name "
                                            "something after it (only trusted.* needs the agent)")};
    }
    if (g.size() > kXattrNameMax) {
      return ActionProblem{at, absl::StrCat("longer than ", kXattrNameMax, " bytes")};
    }
    absl::StatusOr<FlatGlob> glob = FlatGlob::Compile(g);
    if (!glob.ok()) return ActionProblem{at, std::string(glob.status().message())};
  }
  return std::nullopt;
}

XattrVerdict DecideXattrName(const v1::Setxattr& x, absl::string_view name) {
  if (!absl::StartsWith(name, kTrustedPrefix)) return XattrVerdict::kContinue;
  for (const std::string& g : x.allow_names()) {
    absl::StatusOr<FlatGlob> glob = FlatGlob::Compile(g);
    if (glob.ok() && glob->Matches(name)) return XattrVerdict::kSet;
  }
  return XattrVerdict::kRefuse;
}

bool IsBindCall(uint64_t flags) {
  if ((flags & 0xffff0000u) == MS_MGC_VAL) flags &= 0xffffu;
  return (flags & MS_BIND) != 0;
}

namespace {

// The flags a bind (or bind remount) may carry, and the attribute each
// adds; the kernel ignores the per-mount ones on a bind, the agent applies
// them (they only restrict).
constexpr FlagAttr kBindFlags[] = {
    {MS_BIND, 0},
    {MS_SILENT, 0},
    {MS_RDONLY, MOUNT_ATTR_RDONLY},
    {MS_NOSUID, MOUNT_ATTR_NOSUID},
    {MS_NODEV, MOUNT_ATTR_NODEV},
    {MS_NOEXEC, MOUNT_ATTR_NOEXEC},
};

bool GlobMatches(const std::string& glob, const std::string& path) {
  absl::StatusOr<PathGlob> g = PathGlob::Compile(glob);
  return g.ok() && g->Matches(path);
}

// The plan's flags part (bind or remount, recursive, attributes), or why not.
std::string PlanBindFlags(const v1::Mount& m, uint64_t flags, BindPlan* plan) {
  bool any = false;
  for (const v1::MountType& t : m.allow()) any |= t.has_bind();
  if (!any) return "flag MS_BIND is not allowed";
  if ((flags & 0xffff0000u) == MS_MGC_VAL) flags &= 0xffffu;
  plan->remount = (flags & MS_REMOUNT) != 0;
  plan->recursive = !plan->remount && (flags & MS_REC) != 0;
  flags &= ~static_cast<uint64_t>(plan->remount ? MS_REMOUNT : MS_REC);
  plan->attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  for (uint64_t bit = 1; bit != 0 && flags != 0; bit <<= 1) {
    if (!(flags & bit)) continue;
    flags &= ~bit;
    bool ok = false;
    for (const FlagAttr& f : kBindFlags) {
      if (f.flag == bit) {
        plan->attrs |= f.attr;
        ok = true;
      }
    }
    if (!ok) return absl::StrCat("flag ", FlagName(bit), " is not allowed on a bind mount");
  }
  return "";
}

}  // namespace

std::string BindFlagsRefusal(const v1::Mount& m, uint64_t flags) {
  BindPlan plan;
  return PlanBindFlags(m, flags, &plan);
}

BindVerdict DecideBind(const v1::Mount& m, const BindCall& call) {
  BindVerdict v;
  BindPlan plan;
  v.refusal = PlanBindFlags(m, call.flags, &plan);
  if (!v.refusal.empty()) return v;
  for (const v1::MountType& t : m.allow()) {
    if (!t.has_bind() || !GlobMatches(t.bind().to_glob(), call.target)) continue;
    if (!plan.remount && !GlobMatches(t.bind().from_glob(), call.source)) continue;
    plan.entry = &t;
    break;
  }
  if (plan.entry == nullptr) {
    v.refusal = plan.remount ? absl::StrCat("bind remount of ", absl::CEscape(call.target),
                                            " matches no bind entry")
                             : absl::StrCat("bind ", absl::CEscape(call.source), " -> ",
                                            absl::CEscape(call.target), " matches no bind entry");
    return v;
  }
  if (plan.entry->readonly()) plan.attrs |= MOUNT_ATTR_RDONLY;
  v.plan = plan;
  return v;
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
