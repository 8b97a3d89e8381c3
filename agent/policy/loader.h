// Policy files: YAML or JSON text -> seccompagent.v1.Policy, and the
// load-time validation shared by files and FromProto().
//
// File format: the field names of proto/seccompagent/v1/policy.proto in
// snake_case, with these file-only conveniences:
//  * JSON or YAML, decided by content: text that opens with "{" followed by
//    a quoted key (or "}") is JSON and must be strict JSON (checked with
//    nlohmann::json, so "{"a": 1,, }" is refused); anything else, including
//    a YAML flow mapping "{version: 1, ...}", is YAML. Both are then decoded
//    from yaml-cpp nodes, and every scalar is converted from its exact text
//    (integers never pass through a double).
//  * Unknown keys, duplicate keys and a second key of one oneof (two action
//    kinds) are errors.
//  * Errnos (deny.errno, injection.strict_errno, plugins[].error_errno) are
//    names ("EPERM") or numbers 1..4095. `deny: {}` means EPERM.
//  * Enums are lower- or upper-case value names: mode: auto|kernel|emulate,
//    on_error: deny|allow|local.
//  * `action: {plugin: NAME}` is short for `action: {plugin: {name: NAME}}`.
//  * `key:` with no value (null) for a message field is the empty message
//    (`allow:` == `allow: {}`); null for a scalar is an error.
//  * Booleans are true/false; args.fd: -1 means "no fd condition".
#ifndef SECCOMP_AGENT_POLICY_LOADER_H_
#define SECCOMP_AGENT_POLICY_LOADER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/seccompagent/v1/policy.pb.h"

namespace seccomp_agent {

// The schema's C++ namespace (package seccompagent.v1).
namespace v1 = ::seccompagent::v1;

// Decodes `text` (syntax and schema only; no semantic validation).
absl::StatusOr<v1::Policy> ParsePolicyText(absl::string_view text, absl::string_view source);

// Semantic validation (see policy.h and the README for every check).
absl::Status ValidatePolicy(const v1::Policy& policy, absl::string_view source);

// "AF_INET"/"inet" -> AF_INET etc.; -1 when unknown.
int SockaddrFamilyFromString(absl::string_view s);

// Shared error formatting: "SOURCE: RULE: FIELD: MESSAGE", where RULE is
// `rules[2] "name"` (omitted when `rule` is empty) and FIELD is a dotted
// path such as `match.syscalls[1]` (omitted when empty).
absl::Status PolicyError(absl::string_view source, absl::string_view rule, absl::string_view field,
                         absl::string_view message);
std::string RuleLabel(int index, absl::string_view name);  // ItemLabel("rules", ...)
// `plugins[0] "opa"`, or `plugins[0]` when the name is empty.
std::string ItemLabel(absl::string_view list, int index, absl::string_view name);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_POLICY_LOADER_H_
