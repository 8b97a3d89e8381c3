// Parsing of /proc text, in one place (the task's credentials, its pid in
// each namespace, its start time, its state). Pure: the caller reads the
// file (with whatever care its hot path needs) and hands the text here.
#ifndef SECCOMP_AGENT_COMMON_PROC_TEXT_H_
#define SECCOMP_AGENT_COMMON_PROC_TEXT_H_

#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"

namespace seccomp_agent {

// /proc/PID/status: calls fn(key, value) for each "Key:\tvalue" line, the
// value without surrounding blanks, until fn returns false.
void ForEachStatusField(absl::string_view status,
                        absl::FunctionRef<bool(absl::string_view, absl::string_view)> fn);

// The value of `key` ("Tgid", "NSpid") in a /proc/PID/status text.
std::optional<absl::string_view> StatusField(absl::string_view status, absl::string_view key);

// The blank-separated words of a status value ("NSpid:\t12\t1" -> 12, 1).
std::vector<absl::string_view> StatusWords(absl::string_view value);

// /proc/PID/stat: the fields after "(comm)" (a comm may hold blanks and
// ')', so the last ')' ends it): [0] is the state (field 3 of proc(5)),
// [19] the start time (field 22). Empty when there is no "(comm)".
std::vector<absl::string_view> StatFieldsAfterComm(absl::string_view stat);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_COMMON_PROC_TEXT_H_
