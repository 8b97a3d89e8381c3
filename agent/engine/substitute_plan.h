// Policy actions -> substitutes: the router's translation of what a rule or
// a plugin decided (v1::Action, v1::InjectionSettings) into what the
// injector carries out (injector::Substitute, injector::InjectorOptions).
// The injector knows nothing of policies or plugins. Pure functions of
// (event, action): no syscalls, no task memory, so they are unit-tested on
// their own.
//
// Every substitute is built from the AGENT's copy of the arguments (the
// decoded SyscallEvent), never re-read from the task: that is what makes a
// substitution immune to the task changing its memory after the decision.
// An action whose map has no entry for the call still yields a substitute
// (the unchanged call, from the agent's copy) for the same reason.
#ifndef SECCOMP_AGENT_ENGINE_SUBSTITUTE_PLAN_H_
#define SECCOMP_AGENT_ENGINE_SUBSTITUTE_PLAN_H_

#include <string>

#include "absl/status/statusor.h"
#include "agent/injector/injector.h"
#include "agent/injector/substitute.h"
#include "agent/model/event.h"
#include "proto/seccompagent/v1/policy.pb.h"

namespace seccomp_agent {

namespace v1 = ::seccompagent::v1;

struct Plan {
  injector::Substitute sub;
  bool rewritten = false;  // false: the map had no entry; sub is the original call
  std::string note;        // "exact /a -> /b", "prefix /a -> /b", "no mapping", ...
};

// redirect_open for openat (and open, x86_64 nr 2). `exact` first, then the
// longest `prefix` on a "/" border ("/data" matches "/data" and "/data/x",
// not "/database"). Flags and mode are kept. An absolute target ignores the
// dirfd (the substitute carries AT_FDCWD, so no backend touches the task's
// dirfd); a relative target keeps the task's dirfd (openat) or cwd (open).
// Needs ev.path. An open (nr 2) redirect is an injector::Substitute::Open: the kernel
// cannot inject it (not whitelisted), see injector.h for what happens then.
absl::StatusOr<Plan> PlanRedirectOpen(const SyscallEvent& ev, const v1::RedirectOpen& action);

// rewrite_bind: "ADDR:PORT" -> "ADDR:PORT" ("0.0.0.0:80", "[::1]:8080") for
// AF_INET / AF_INET6 (compared as parsed addresses; the family of the key
// must be the family of the call, the target may be either family only if
// it equals the socket's family), or unix path -> unix path ("/run/a.sock",
// "@abstract"). Builds the new sockaddr bytes. Needs ev.sockaddr.
absl::StatusOr<Plan> PlanRewriteBind(const SyscallEvent& ev, const v1::RewriteBind& action);

// replace_write: the substitute bytes are `replace`, or the written bytes
// with every match of `redact_regex` (RE2 syntax, on bytes; linear time in
// the count: agent/common/regex.h) replaced by `redaction` (default
// "[REDACTED]", taken literally).
//
// Count semantics: injector::Substitute::task_count is the count the TASK asked to
// write. When the substitute is written in full, the task must see that
// count, not the substitute's length: a caller that gets less retries the
// "rest" (writing the tail twice) and one that gets more than it asked for
// breaks its own accounting (size_t underflow, infinite loops). See the
// backends in injector.h for how each honours it.
// Redaction needs all the bytes: when the decoder captured fewer bytes than
// the count (EngineOptions::max_write_capture), this fails (fail closed).
absl::StatusOr<Plan> PlanReplaceWrite(const SyscallEvent& ev, const v1::ReplaceWrite& action);

// Dispatches on the action kind; InvalidArgument for a non-substitution
// action or a syscall the action does not apply to.
absl::StatusOr<Plan> PlanAction(const SyscallEvent& ev, const v1::Action& action);

// injection: {mode, strict, strict_errno} from the policy.
injector::InjectorOptions InjectorOptionsFromProto(const v1::InjectionSettings& settings);

// Builds sockaddr bytes from "ADDR:PORT" / "[ADDR6]:PORT" / "/path" /
// "@abstract" text. `family_hint` decides between a unix path and inet.
absl::StatusOr<std::string> SockaddrFromText(const std::string& text, int family_hint);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_SUBSTITUTE_PLAN_H_
