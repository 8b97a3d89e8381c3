#include "agent/plugin/decision.h"

#include <arpa/inet.h>
#include <linux/audit.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include <cstring>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/model/syscall_args.h"
#include "agent/policy/action_checks.h"
#include "agent/policy/privileged_rules.h"

namespace seccomp_agent::plugin {
namespace {

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

// A problem the shared action rules (agent/policy/action_checks.h) found.
absl::Status Invalid(const std::optional<ActionProblem>& p) {
  if (!p) return absl::OkStatus();
  return Invalid(absl::StrCat(p->field, ": ", p->message));
}

absl::Status CheckRedirectOpen(const v1::RedirectOpen& ro, const ValidationContext& ctx) {
  if (!RedirectOpenAppliesTo(ctx.syscall)) {
    return Invalid(
        absl::StrCat("redirect_open does not apply to ", ctx.syscall, " (only open, openat)"));
  }
  static const std::vector<std::string> kNoRoots;
  return Invalid(CheckRedirectOpenMap(ro, ctx.redirect_roots ? *ctx.redirect_roots : kNoRoots));
}

absl::Status CheckRewriteBind(const v1::RewriteBind& rb, const ValidationContext& ctx) {
  if (!RewriteBindAppliesTo(ctx.syscall)) {
    return Invalid(absl::StrCat("rewrite_bind does not apply to ", ctx.syscall, " (only bind)"));
  }
  return Invalid(CheckRewriteBindMap(rb));
}

absl::Status CheckReplaceWrite(const v1::ReplaceWrite& rw, const ValidationContext& ctx) {
  if (!ReplaceWriteAppliesTo(ctx.syscall)) {
    return Invalid(absl::StrCat("replace_write does not apply to ", ctx.syscall, " (only write)"));
  }
  if (rw.mode_case() != v1::ReplaceWrite::kReplace) {
    return Invalid("replace_write from a plugin must use `replace` (redact_regex is refused)");
  }
  if (rw.replace().size() > kMaxReplaceBytes) {
    return Invalid(
        absl::StrCat("replace_write.replace is ", rw.replace().size(), " bytes (max 1 MiB)"));
  }
  if (!rw.redaction().empty())
    return Invalid("replace_write.redaction is only meaningful with redact_regex");
  return absl::OkStatus();
}

absl::Status CheckInject(const v1::Inject& in, const ValidationContext& ctx) {
  if (ctx.arch != NativeAuditArch()) {
    return Invalid(absl::StrCat("inject on arch ", ArchName(ctx.arch), " (only ",
                                ArchName(NativeAuditArch()), ")"));
  }
  if (ctx.nr < 0 || in.nr() != static_cast<uint64_t>(ctx.nr)) {
    return Invalid(absl::StrCat("inject.nr ", in.nr(), " != trapped nr ", ctx.nr));
  }
  const int nr = ctx.nr;
  if (nr != SYS_openat && nr != SYS_bind && nr != SYS_write) {
    return Invalid(absl::StrCat("inject.nr ", nr, " is not openat, bind or write"));
  }
  if (in.args_size() != 6)
    return Invalid(absl::StrCat("inject.args has ", in.args_size(), " entries (need 6)"));
  const uint32_t mask = in.args_in_buf_mask();
  if ((mask & ~uint32_t{0x3f}) != 0) {
    return Invalid(
        absl::StrFormat("inject.args_in_buf_mask 0x%x has bits beyond args[0..5]", mask));
  }
  const std::string& buf = in.buf();
  if (buf.size() > kMaxInjectBytes) {
    return Invalid(
        absl::StrCat("inject.buf is ", buf.size(), " bytes (max ", kMaxInjectBytes, ")"));
  }
  if (mask != 0 && buf.empty())
    return Invalid("inject.args_in_buf_mask set but inject.buf is empty");
  for (int i = 0; i < 6; ++i) {
    if ((mask & (1u << i)) != 0 && in.args(i) >= buf.size()) {
      return Invalid(absl::StrCat("inject.args[", i, "] offset ", in.args(i), " is outside buf (",
                                  buf.size(), " bytes)"));
    }
  }
  // Every substitute keeps its one pointer argument at args[1].
  if (mask != 0x2) {
    return Invalid(
        absl::StrFormat("inject.args_in_buf_mask must be 0x2 (args[1] in buf), got 0x%x", mask));
  }
  const uint64_t off = in.args(1);
  const uint64_t room = buf.size() - off;  // off < size checked above
  if (nr == SYS_openat) {
    if (std::memchr(buf.data() + off, '\0', room) == nullptr) {
      return Invalid("inject openat: the path in buf has no terminating NUL");
    }
    return absl::OkStatus();
  }
  // bind and write act on the trapped fd: a plugin substitutes the data,
  // not the object (compared as 32-bit ints, like the kernel).
  if (static_cast<int32_t>(in.args(0)) != static_cast<int32_t>(ctx.args[0])) {
    return Invalid(absl::StrCat("inject.args[0] fd ", static_cast<int32_t>(in.args(0)),
                                " != trapped fd ", static_cast<int32_t>(ctx.args[0])));
  }
  const uint64_t len = in.args(2);
  if (nr == SYS_bind) {
    if (len == 0 || len > kMaxSockaddrLen) {
      return Invalid(absl::StrCat("inject bind: addrlen ", len, " not in 1..", kMaxSockaddrLen));
    }
  }
  if (len > room) {
    return Invalid(absl::StrCat("inject: ", len, " bytes at offset ", off, " run past buf (",
                                buf.size(), " bytes)"));
  }
  return absl::OkStatus();
}

// The privileged actions: the rules live in agent/policy/privileged_rules.h
// (shared with the policy loader).
absl::Status CheckPrivileged(absl::string_view kind, bool (*applies)(absl::string_view),
                             absl::string_view allowed, const ValidationContext& ctx,
                             const std::optional<ActionProblem>& problem) {
  if (!applies(ctx.syscall)) {
    return Invalid(absl::StrCat(kind, " does not apply to ", ctx.syscall, " (only ", allowed, ")"));
  }
  if (problem) return Invalid(absl::StrCat(kind, ".", problem->field, ": ", problem->message));
  return absl::OkStatus();
}

absl::Status CheckReturn(int64_t value, const ValidationContext& ctx) {
  if (!ReturnAllowedFor(ctx.syscall)) {
    return Invalid(absl::StrCat("return is refused for ", ctx.syscall));
  }
  if (ReturnReadsAsErrno(value)) {
    return Invalid(absl::StrCat("return.value ", value, " is an errno (use deny)"));
  }
  if (ctx.syscall == "write" && (value < 0 || static_cast<uint64_t>(value) > ctx.args[2])) {
    return Invalid(absl::StrCat("return.value ", value, " for write of ", ctx.args[2], " bytes"));
  }
  return absl::OkStatus();
}

absl::Status CheckErrno(int32_t e) {
  if (!ValidErrno(e)) {
    return Invalid(absl::StrCat("deny.errno ", e, " not in 1..", kMaxErrno));
  }
  return absl::OkStatus();
}

void Put(std::string* k, absl::string_view v) {
  uint32_t n = static_cast<uint32_t>(v.size());
  k->append(reinterpret_cast<const char*>(&n), sizeof(n));
  k->append(v.data(), v.size());
}
void PutU64(std::string* k, uint64_t v) { k->append(reinterpret_cast<const char*>(&v), sizeof(v)); }

}  // namespace

uint32_t NativeAuditArch() {
#if defined(__x86_64__)
  return AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  return AUDIT_ARCH_AARCH64;
#else
#error "unsupported architecture"
#endif
}

std::string ArchName(uint32_t a) {
  switch (a) {
    case AUDIT_ARCH_X86_64:
      return "x86_64";
    case AUDIT_ARCH_I386:
      return "x86";
    case AUDIT_ARCH_AARCH64:
      return "aarch64";
    case AUDIT_ARCH_ARM:
      return "arm";
    default:
      return absl::StrFormat("0x%x", a);
  }
}

bool ReturnAllowedFor(absl::string_view syscall) {
  static const auto* const kRefused = new absl::flat_hash_set<absl::string_view>{
      // exec, exit, process creation, signal return
      "execve", "execveat", "exit", "exit_group", "fork", "vfork", "clone", "clone3",
      "rt_sigreturn", "sigreturn", "restart_syscall",
      // calls that create file descriptors
      "open", "openat", "openat2", "creat", "open_by_handle_at", "socket", "socketpair", "accept",
      "accept4", "dup", "dup2", "dup3", "pipe", "pipe2", "eventfd", "eventfd2", "memfd_create",
      "memfd_secret", "epoll_create", "epoll_create1", "signalfd", "signalfd4", "timerfd_create",
      "inotify_init", "inotify_init1", "fanotify_init", "pidfd_open", "pidfd_getfd", "userfaultfd",
      "perf_event_open", "io_uring_setup", "bpf", "fsopen", "fsmount", "fspick", "open_tree",
      "landlock_create_ruleset", "mq_open",
      // calls that create mappings or move the break
      "mmap", "mmap2", "mremap", "brk", "shmat"};
  return !syscall.empty() && !kRefused->contains(syscall);
}

ValidationContext ContextFor(const SyscallEvent& ev,
                             const std::vector<std::string>* redirect_roots) {
  ValidationContext c;
  c.nr = ev.nr;
  c.arch = ev.arch;
  c.syscall = ev.syscall;
  for (int i = 0; i < 6; ++i) c.args[i] = ev.args[i];
  c.redirect_roots = redirect_roots;
  return c;
}

absl::Status ValidateDecision(const v1::Decision& d, const ValidationContext& ctx) {
  if (!v1::CacheHint::Scope_IsValid(d.cache().scope())) {
    return Invalid(absl::StrCat("cache.scope ", d.cache().scope(), " is unknown"));
  }
  switch (d.kind_case()) {
    case v1::Decision::KIND_NOT_SET:
      return Invalid("decision has no kind");
    case v1::Decision::kNoOpinion:
    case v1::Decision::kAllow:
      return absl::OkStatus();
    case v1::Decision::kDeny:
      return CheckErrno(d.deny().errno_code());
    case v1::Decision::kReturn:
      return CheckReturn(d.return_().value(), ctx);
    case v1::Decision::kInject:
      return CheckInject(d.inject(), ctx);
    case v1::Decision::kRedirectOpen:
      return CheckRedirectOpen(d.redirect_open(), ctx);
    case v1::Decision::kRewriteBind:
      return CheckRewriteBind(d.rewrite_bind(), ctx);
    case v1::Decision::kReplaceWrite:
      return CheckReplaceWrite(d.replace_write(), ctx);
    case v1::Decision::kSysinfo:
      return CheckPrivileged("sysinfo", SysinfoAppliesTo, "sysinfo", ctx,
                             CheckSysinfo(d.sysinfo()));
    case v1::Decision::kMknod:
      return CheckPrivileged("mknod", MknodAppliesTo, "mknod, mknodat", ctx, CheckMknod(d.mknod()));
    case v1::Decision::kMount:
      return CheckPrivileged("mount", MountAppliesTo, "mount", ctx, CheckMount(d.mount()));
    case v1::Decision::kSetxattr:
      return CheckPrivileged("setxattr", SetxattrAppliesTo, "setxattr, lsetxattr, fsetxattr", ctx,
                             CheckSetxattr(d.setxattr()));
  }
  return Invalid(absl::StrCat("unknown decision kind ", d.kind_case()));
}

namespace {
// `resolved` is what the policy's globs match (policy.cc): the engine's
// resolution when it made one, else the path itself when absolute.
void FillPath(const std::string& raw, const std::optional<std::string>& resolved,
              v1::DecodedPath* out) {
  out->set_value(raw);
  out->set_source(v1::VALUE_SOURCE_TASK_MEMORY_SNAPSHOT);
  if (resolved) {
    out->set_resolved(*resolved);
  } else if (!raw.empty() && raw[0] == '/') {
    out->set_resolved(raw);
  }
}
}  // namespace

v1::Notification BuildNotification(const SyscallEvent& ev, size_t max_write_bytes) {
  v1::Notification n;
  if (ev.container != nullptr) {
    const ContainerInfo& ci = *ev.container;
    v1::Container* c = n.mutable_container();
    c->set_id(ci.id);
    c->mutable_annotations()->insert(ci.annotations.begin(), ci.annotations.end());
    c->set_listener_metadata(ci.metadata);
    c->set_runtime(ci.runtime);
    c->set_init_pid(ci.init_pid);
    c->set_bundle(ci.bundle);
    if (!ci.pod_namespace.empty() || !ci.pod_name.empty() || !ci.container_name.empty()) {
      v1::KubernetesIdentity* k = c->mutable_kubernetes();
      k->set_pod_namespace(ci.pod_namespace);
      k->set_pod_name(ci.pod_name);
      k->set_container_name(ci.container_name);
    }
  }
  n.set_pid(ev.pid);
  n.set_notification_id(ev.id);
  n.set_syscall_nr(ev.nr);
  n.set_syscall_name(ev.syscall);
  n.set_arch(ev.arch);
  n.set_arch_name(ArchName(ev.arch));
  for (uint64_t a : ev.args) n.add_args(a);
  n.set_runtime_phase(ev.runtime_phase);
  n.set_instruction_pointer(ev.instruction_pointer);
  v1::Decoded* d = n.mutable_decoded();
  constexpr auto kSnap = v1::VALUE_SOURCE_TASK_MEMORY_SNAPSHOT;
  if (ev.path) FillPath(*ev.path, ev.abs_path, d->mutable_path());
  if (ev.path2) FillPath(*ev.path2, ev.abs_path2, d->mutable_path2());
  if (ev.dirfd) {
    d->mutable_dirfd()->set_value(static_cast<int32_t>(*ev.dirfd));
    d->mutable_dirfd()->set_source(v1::VALUE_SOURCE_REGISTERS);
  }
  if (ev.fd) {
    d->mutable_fd()->set_value(static_cast<int32_t>(*ev.fd));
    d->mutable_fd()->set_source(v1::VALUE_SOURCE_REGISTERS);
  }
  if (ev.sockaddr) {
    v1::DecodedSockaddr* s = d->mutable_sockaddr();
    s->set_family(ev.sockaddr->family);
    s->set_address(ev.sockaddr->address);
    s->set_port(ev.sockaddr->port.value_or(0));
    s->set_raw(ev.sockaddr->raw.data(), ev.sockaddr->raw.size());
    s->set_source(kSnap);
  }
  if (ev.write_bytes) {
    v1::DecodedWrite* w = d->mutable_write();
    const size_t n_bytes =
        std::min(ev.write_bytes->size(), std::min(max_write_bytes, kMaxInjectBytes));
    w->set_data(ev.write_bytes->data(), n_bytes);
    const uint64_t count = ev.write_count.value_or(ev.args[2]);
    w->set_count(count);
    w->set_truncated(n_bytes < count);
    w->set_source(kSnap);
  }
  d->set_error(ev.decode_error);
  return n;
}

bool AsPlain(const v1::Decision& d, PlainDecision* out) {
  switch (d.kind_case()) {
    case v1::Decision::kAllow:
      *out = PlainDecision{PlainDecision::Kind::kAllow, 0, 0};
      return true;
    case v1::Decision::kDeny:
      *out = PlainDecision{PlainDecision::Kind::kDeny, d.deny().errno_code(), 0};
      return true;
    case v1::Decision::kReturn:
      *out = PlainDecision{PlainDecision::Kind::kReturn, 0, d.return_().value()};
      return true;
    case v1::Decision::kNoOpinion:
      *out = PlainDecision{PlainDecision::Kind::kNoOpinion, 0, 0};
      return true;
    default:
      return false;
  }
}

bool PlainValid(const PlainDecision& p, const ValidationContext& ctx) {
  switch (p.kind) {
    case PlainDecision::Kind::kAllow:
    case PlainDecision::Kind::kNoOpinion:
      return true;
    case PlainDecision::Kind::kDeny:
      return CheckErrno(p.errno_code).ok();
    case PlainDecision::Kind::kReturn:
      return CheckReturn(p.value, ctx).ok();
  }
  return false;
}

void FillSyscallContainerKey(std::string* k, absl::string_view plugin, const SyscallEvent& ev) {
  k->clear();
  k->push_back('S');
  Put(k, plugin);
  // The registration, not the id (a reused id is another container).
  PutU64(k, ev.container != nullptr ? ev.container->instance : 0);
  PutU64(k, ev.arch);
  PutU64(k, static_cast<uint64_t>(static_cast<int64_t>(ev.nr)));
}

std::string SyscallContainerKey(absl::string_view plugin, const SyscallEvent& ev) {
  std::string k;
  k.reserve(64);
  FillSyscallContainerKey(&k, plugin, ev);
  return k;
}

std::string ExactArgsKey(absl::string_view plugin, const SyscallEvent& ev) {
  std::string k;
  k.reserve(128);
  FillExactArgsKey(&k, plugin, ev);
  return k;
}

void FillExactArgsKey(std::string* key, absl::string_view plugin, const SyscallEvent& ev) {
  std::string& k = *key;
  FillSyscallContainerKey(&k, plugin, ev);
  k[0] = 'E';
  uint64_t args[6];
  for (int i = 0; i < 6; ++i) args[i] = ev.args[i];
  // A pointer the engine decoded is keyed by what it points to.
  if (const SyscallArgLayout* l = ArgLayoutFor(ev.syscall); l != nullptr) {
    if (l->path >= 0 && ev.path) args[l->path] = 0;
    if (l->path2 >= 0 && ev.path2) args[l->path2] = 0;
    if (l->sockaddr >= 0 && ev.sockaddr) args[l->sockaddr] = 0;
    if (l->buf >= 0 && ev.write_bytes) args[l->buf] = 0;
  }
  for (uint64_t a : args) PutU64(&k, a);
  auto put_opt = [&k](const std::optional<std::string>& v) {
    k.push_back(v ? '1' : '0');
    if (v) Put(&k, *v);
  };
  put_opt(ev.path);
  put_opt(ev.path2);
  // The same relative path names another file in another cwd.
  put_opt(ev.abs_path);
  put_opt(ev.abs_path2);
  k.push_back(ev.sockaddr ? '1' : '0');
  if (ev.sockaddr) {
    Put(&k, absl::string_view(reinterpret_cast<const char*>(ev.sockaddr->raw.data()),
                              ev.sockaddr->raw.size()));
    Put(&k, ev.sockaddr->address);
  }
  put_opt(ev.write_bytes);
  k.push_back(ev.runtime_phase ? '1' : '0');
  Put(&k, ev.decode_error);
}

}  // namespace seccomp_agent::plugin
