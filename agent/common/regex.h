// The agent's one regular-expression engine: RE2. Every pattern the agent
// compiles (policy redact_regex, at load and when a write is redacted) goes
// through CompileRegex, so they all get the same syntax, encoding and limits.
//
// Why RE2: matching takes time linear in the input. std::regex backtracks:
// `(\w+\s?)+:` on 4 KiB of a container's write ran for more than 20 s in a
// worker. What RE2 cannot match in linear time (backreferences, lookaround)
// it refuses to compile, so such a pattern is an error at policy load.
//
// Patterns and text are bytes (RE2's Latin-1 mode): `.` is one byte and a
// task's non-UTF-8 data is matched like any other.
#ifndef SECCOMP_AGENT_COMMON_REGEX_H_
#define SECCOMP_AGENT_COMMON_REGEX_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "re2/re2.h"

namespace seccomp_agent {

// Memory one compiled pattern may use (RE2 refuses larger programs, and its
// DFA falls back to the slower but still linear NFA when it runs out).
inline constexpr int64_t kRegexMaxMem = int64_t{8} << 20;

// Compiles `pattern`; InvalidArgument with RE2's reason when it does not.
absl::StatusOr<std::unique_ptr<const re2::RE2>> CompileRegex(absl::string_view pattern);

// `text` with every non-overlapping match of `re` replaced by `literal`
// (taken as is: no \1 or $ escapes).
std::string ReplaceAllLiteral(absl::string_view text, const re2::RE2& re,
                              absl::string_view literal);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_COMMON_REGEX_H_
