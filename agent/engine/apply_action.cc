#include "agent/engine/apply_action.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <cerrno>
#include <cstdint>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/status.h"
#include "agent/engine/substitute_plan.h"
#include "agent/injector/bind_mount.h"
#include "agent/injector/privileged.h"
#include "agent/policy/policy.h"
#include "agent/policy/privileged_rules.h"
#include "agent/seccomp/task_memory.h"
#include "agent/seccomp/task_path.h"

namespace seccomp_agent {

using injector::Outcome;
using injector::Substitute;

namespace {

// The container a mount is for: its own mount namespace is its init's, and
// it has one count of the agent's mounts in any other (privileged_util.h).
injector::MountScope MountScopeOf(const SyscallEvent& ev) {
  if (ev.container == nullptr || ev.container->usage == nullptr) return {};
  return {ev.container->init_pid, &ev.container->usage->nested_mounts};
}

// The redirect root `target` is under (longest, on a "/" border), or "".
std::string RootOf(const std::string& target, const std::vector<std::string>& roots) {
  std::string best;
  for (const std::string& r : roots) {
    std::string root = r;
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    const bool under = target.compare(0, root.size(), root) == 0 &&
                       (target.size() == root.size() || target[root.size()] == '/');
    if (under && root.size() > best.size()) best = root;
  }
  return best;
}

// Resolves a redirect target in the task's root and checks it stays under
// `root` ("" = no check). The substitute then names the resolved path.
absl::Status PinTarget(const SyscallEvent& ev, const std::string& root, Substitute& sub) {
  const bool is_openat = sub.nr == __NR_openat;
  const int p = is_openat ? 1 : 0;
  const int flags = static_cast<int>(sub.args[is_openat ? 2 : 1]);
  const std::string target(sub.buf.data() + sub.args[p]);
  const int dirfd = is_openat ? static_cast<int>(static_cast<int32_t>(sub.args[0])) : AT_FDCWD;
  const bool follow = !(flags & O_NOFOLLOW) && (flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL);
  SA_ASSIGN_OR_RETURN(std::string resolved, ResolveTaskPath(ev.pid, dirfd, target, follow));
  if (!root.empty() && RootOf(resolved, {root}).empty()) {
    return ErrnoStatus(EACCES, absl::StrCat("redirect target ", target, " resolves to ", resolved,
                                            ", outside ", root));
  }
  const mode_t mode = static_cast<mode_t>(sub.args[is_openat ? 3 : 2]);
  Substitute pinned = is_openat ? Substitute::Openat(AT_FDCWD, resolved, flags, mode)
                                : Substitute::Open(resolved, flags, mode);
  pinned.beneath = root;
  sub = std::move(pinned);
  return absl::OkStatus();
}

// mknod: the allow list (agent/policy/privileged_rules.h) decides; the
// injector creates (injector/privileged.h).
absl::StatusOr<Outcome> ApplyMknod(UnotifyInterface& u, int listener, const seccomp_notif& notif,
                                   const SyscallEvent& ev, const v1::Mknod& rule) {
  const bool at = ev.syscall == "mknodat";
  const uint64_t mode = notif.data.args[at ? 2 : 1];
  const DeviceRequest dev = DecodeMknod(mode, notif.data.args[at ? 3 : 2]);
  if (dev.type == 0) {
    // A file, FIFO or socket needs no privilege: the kernel runs the call
    // with the task's own checks (mode and dev are registers, not memory).
    return injector::ReplyPrivileged(u, listener, notif.id, true, 0,
                                     "continue (not a device node)");
  }
  if (FindAllowedDevice(rule, dev) == nullptr) {
    return injector::ReplyPrivileged(
        u, listener, notif.id, false, EPERM,
        absl::StrCat("EPERM (", DeviceText(dev), " is not in the allow list)"));
  }
  if (!ev.path.has_value()) return ErrnoStatus(EFAULT, "mknod: the path was not read");
  injector::NodeRequest req;
  req.path = *ev.path;  // the agent's copy
  req.dirfd = at ? static_cast<int32_t>(notif.data.args[0]) : AT_FDCWD;
  req.mode = static_cast<mode_t>(mode);
  req.dev = makedev(dev.major, dev.minor);
  req.what = DeviceText(dev);
  return injector::CreateNode(u, listener, notif, req);
}

// A bind mount (MS_BIND): both paths are resolved as the kernel resolves
// them for the task (in its root, from its cwd, every symlink followed in
// the root; task_path.h), the rule's bind entries decide on those
// (privileged_rules.h DecideBind), the injector binds exactly them
// (injector/bind_mount.h). The source is read once, here.
absl::StatusOr<Outcome> ApplyBind(UnotifyInterface& u, int listener, const seccomp_notif& notif,
                                  const SyscallEvent& ev, const v1::Mount& rule) {
  auto refuse = [&](const std::string& why) {
    return injector::ReplyPrivileged(u, listener, notif.id, false, EPERM,
                                     absl::StrCat("EPERM (", why, ")"));
  };
  BindCall call;
  call.flags = notif.data.args[3];
  const bool remount = (call.flags & MS_REMOUNT) != 0;
  if (std::string why = BindFlagsRefusal(rule, call.flags); !why.empty()) return refuse(why);
  if (!ev.path.has_value()) return ErrnoStatus(EFAULT, "mount: the target was not read");
  absl::StatusOr<std::string> target = ResolveTaskPath(ev.pid, AT_FDCWD, *ev.path, true);
  if (!target.ok()) {
    return refuse(
        absl::StrCat("target not resolved in the task's root: ", target.status().message()));
  }
  call.target = *std::move(target);
  if (!remount) {
    absl::StatusOr<std::string> raw = ReadTaskString(ev.pid, notif.data.args[0], PATH_MAX);
    if (!raw.ok()) {
      const int err = ErrnoOf(raw.status()) == ENAMETOOLONG ? ENAMETOOLONG : EFAULT;
      return injector::ReplyPrivileged(u, listener, notif.id, false, err,
                                       absl::StrCat(ErrnoName(err), " (source unreadable)"));
    }
    absl::StatusOr<std::string> source = ResolveTaskPath(ev.pid, AT_FDCWD, *raw, true);
    if (!source.ok()) {
      return refuse(absl::StrCat("source ", *raw,
                                 " not resolved in the task's root: ", source.status().message()));
    }
    call.source = *std::move(source);
  }
  BindVerdict v = DecideBind(rule, call);
  if (!v.plan) return refuse(v.refusal);
  injector::BindRequest req;
  req.scope = MountScopeOf(ev);
  req.source = call.source;
  req.target = call.target;
  req.remount = v.plan->remount;
  req.recursive = v.plan->recursive;
  req.attrs = v.plan->attrs;
  std::vector<std::string> words;
  if (!remount) words = {call.source, "->"};
  words.push_back(call.target);
  for (const auto& [bit, name] : {std::pair{MOUNT_ATTR_RDONLY, "ro"},
                                  {MOUNT_ATTR_NOSUID, "nosuid"},
                                  {MOUNT_ATTR_NODEV, "nodev"},
                                  {MOUNT_ATTR_NOEXEC, "noexec"}}) {
    if (req.attrs & bit) words.push_back(name);
  }
  if (req.recursive) words.push_back("rec");
  req.what = absl::StrJoin(words, " ");
  return injector::BindInTask(u, listener, notif, req);
}

// mount: the allow list decides the type, flags and options
// (privileged_rules.h DecideMount); the injector mounts
// (injector/privileged.h). fstype and data are read once, here: the agent
// mounts its copies.
absl::StatusOr<Outcome> ApplyMount(UnotifyInterface& u, int listener, const seccomp_notif& notif,
                                   const SyscallEvent& ev, const v1::Mount& rule) {
  if (IsBindCall(notif.data.args[3])) return ApplyBind(u, listener, notif, ev, rule);
  MountCall call;
  call.flags = notif.data.args[3];
  // No type (NULL): a propagation change or a remount, which the flags refuse.
  if (notif.data.args[2] != 0) {
    absl::StatusOr<std::string> fstype = ReadTaskString(ev.pid, notif.data.args[2], 64);
    if (!fstype.ok()) {
      return injector::ReplyPrivileged(u, listener, notif.id, false, EFAULT,
                                       "EFAULT (fstype unreadable)");
    }
    call.fstype = *std::move(fstype);
  }
  if (notif.data.args[4] != 0) {
    absl::StatusOr<std::string> data = ReadTaskString(ev.pid, notif.data.args[4], 4095);
    if (!data.ok()) {
      return injector::ReplyPrivileged(u, listener, notif.id, false, EPERM,
                                       "EPERM (data unreadable or longer than 4095 bytes)");
    }
    call.data = *std::move(data);
  }
  MountVerdict v = DecideMount(rule, call);
  if (!v.plan) {
    return injector::ReplyPrivileged(u, listener, notif.id, false, EPERM,
                                     absl::StrCat("EPERM (", v.refusal, ")"));
  }
  if (!ev.path.has_value()) return ErrnoStatus(EFAULT, "mount: the target was not read");
  injector::MountRequest req;
  req.scope = MountScopeOf(ev);
  req.target = *ev.path;
  req.fstype = call.fstype;
  req.options = std::move(v.plan->options);
  req.attrs = v.plan->attrs;
  std::vector<std::string> words = {call.fstype};
  for (const auto& [bit, name] : {std::pair{MOUNT_ATTR_RDONLY, "ro"},
                                  {MOUNT_ATTR_NOSUID, "nosuid"},
                                  {MOUNT_ATTR_NODEV, "nodev"},
                                  {MOUNT_ATTR_NOEXEC, "noexec"}}) {
    if (req.attrs & bit) words.push_back(name);
  }
  for (const auto& [k, val] : req.options) words.push_back(val.empty() ? k : k + "=" + val);
  req.what = absl::StrJoin(words, " ");
  return injector::MountInTask(u, listener, notif, req);
}

// The kernel's own answer to the call's name, size and flags, checked in its
// order (fs/xattr.c: flags, name, size) before anything is looked up: 0 or
// the errno, with the name read into `name`.
int ReadXattrName(const SyscallEvent& ev, const seccomp_notif& notif, std::string* name) {
  const uint32_t flags = static_cast<uint32_t>(notif.data.args[4]);
  if (flags & ~uint32_t{XATTR_CREATE | XATTR_REPLACE}) return EINVAL;
  absl::StatusOr<std::string> n = ReadTaskString(ev.pid, notif.data.args[1], kXattrNameMax);
  if (!n.ok()) return ErrnoOf(n.status()) == ENAMETOOLONG ? ERANGE : EFAULT;
  if (n->empty()) return ERANGE;
  *name = *std::move(n);
  if (notif.data.args[3] > kXattrSizeMax) return E2BIG;
  return 0;
}

std::string XattrFlagsText(int flags) {
  if (flags == XATTR_CREATE) return " XATTR_CREATE";
  if (flags == XATTR_REPLACE) return " XATTR_REPLACE";
  if (flags != 0) return " XATTR_CREATE|XATTR_REPLACE";
  return "";
}

// setxattr, lsetxattr, fsetxattr: the allow list decides the name
// (privileged_rules.h DecideXattrName); the injector checks the file and
// sets the attribute (injector/privileged.h). Name and value are read once,
// here: the agent sets its copies.
absl::StatusOr<Outcome> ApplySetxattr(UnotifyInterface& u, int listener, const seccomp_notif& notif,
                                      const SyscallEvent& ev, const v1::Setxattr& rule) {
  injector::XattrRequest req;
  if (const int err = ReadXattrName(ev, notif, &req.name); err != 0) {
    return injector::ReplyPrivileged(u, listener, notif.id, false, err,
                                     absl::StrCat(ErrnoName(err), " (name, size or flags)"));
  }
  switch (DecideXattrName(rule, req.name)) {
    case XattrVerdict::kContinue:  // not trusted.*: the task's own privilege decides
      return injector::ReplyPrivileged(
          u, listener, notif.id, true, 0,
          absl::StrCat("continue (", absl::CEscape(req.name), " is not a trusted.* name)"));
    case XattrVerdict::kRefuse:
      return injector::ReplyPrivileged(
          u, listener, notif.id, false, EPERM,
          absl::StrCat("EPERM (", absl::CEscape(req.name), " is not in allow_names)"));
    case XattrVerdict::kSet:
      break;
  }
  const uint64_t size = notif.data.args[3];
  if (size > 0) {
    absl::StatusOr<std::vector<uint8_t>> v = ReadTaskBytes(ev.pid, notif.data.args[2], size);
    if (!v.ok()) {
      return injector::ReplyPrivileged(u, listener, notif.id, false, EFAULT,
                                       "EFAULT (value unreadable)");
    }
    req.value.assign(v->begin(), v->end());
  }
  req.flags = static_cast<int>(notif.data.args[4]);
  if (ev.syscall == "fsetxattr") {
    req.by_fd = true;
    req.fd = static_cast<int32_t>(notif.data.args[0]);
  } else {
    if (!ev.path.has_value()) return ErrnoStatus(EFAULT, "setxattr: the path was not read");
    req.path = *ev.path;  // the agent's copy
    req.follow = ev.syscall == "setxattr";
  }
  // The value, escaped, at most 64 bytes of it: enough for overlayfs's.
  const std::string shown = req.value.substr(0, 64);
  req.what = absl::StrCat(absl::CEscape(req.name), "=\"", absl::CEscape(shown),
                          req.value.size() > shown.size() ? "\"..." : "\"", " (", req.value.size(),
                          " bytes", XattrFlagsText(req.flags), ")");
  return injector::SetXattrAsTask(u, listener, notif, req);
}

}  // namespace

absl::StatusOr<Outcome> ApplyAction(injector::Injector& injector, int listener,
                                    const seccomp_notif& notif, const SyscallEvent& ev,
                                    const v1::Action& action,
                                    const std::vector<std::string>& redirect_roots) {
  // A path the agent could not read fails as the kernel fails it (EFAULT,
  // or ENAMETOOLONG past PATH_MAX), not with the engine's fallback errno.
  if ((ActionNeeds(action) & kNeedPath) && !ev.path.has_value() &&
      (ev.path_errno == EFAULT || ev.path_errno == ENAMETOOLONG)) {
    return injector.Refuse(listener, notif.id, ev.path_errno, "policy",
                           absl::StrCat(ErrnoName(ev.path_errno), " (path unreadable)"));
  }
  if (action.kind_case() == v1::Action::kSysinfo) {
    return injector::AnswerSysinfo(injector.unotify(), listener, notif,
                                   ev.container != nullptr ? ev.container->init_pid : 0);
  }
  if (action.kind_case() == v1::Action::kMknod) {
    return ApplyMknod(injector.unotify(), listener, notif, ev, action.mknod());
  }
  if (action.kind_case() == v1::Action::kMount) {
    return ApplyMount(injector.unotify(), listener, notif, ev, action.mount());
  }
  if (action.kind_case() == v1::Action::kSetxattr) {
    return ApplySetxattr(injector.unotify(), listener, notif, ev, action.setxattr());
  }
  SA_ASSIGN_OR_RETURN(Plan plan, PlanAction(ev, action));
  if (action.kind_case() != v1::Action::kRedirectOpen) {
    return injector.Inject(listener, notif, plan.sub);
  }
  // A matching rule never falls through to the original file.
  if (!plan.rewritten) {
    return injector.Refuse(listener, notif.id, EACCES, "policy", "EACCES (no mapping)");
  }
  const std::string target(plan.sub.buf.data() + plan.sub.args[plan.sub.nr == __NR_openat]);
  const std::string root = RootOf(target, redirect_roots);
  if (!redirect_roots.empty() && root.empty()) {
    return injector.Refuse(listener, notif.id, EACCES, "policy",
                           "EACCES (target outside redirect_roots)");
  }
  absl::Status pinned = PinTarget(ev, root, plan.sub);
  if (ErrnoOf(pinned) == EACCES) {
    return injector.Refuse(listener, notif.id, EACCES, "policy",
                           absl::StrCat("EACCES (", pinned.message(), ")"));
  }
  // Not resolvable (a missing parent, the task gone, ...): the substitute
  // keeps the unresolved target; the emulation still opens it beneath root.
  if (!pinned.ok()) plan.sub.beneath = root;
  return injector.Inject(listener, notif, plan.sub);
}

}  // namespace seccomp_agent
