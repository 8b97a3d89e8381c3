#include "agent/common/proc_text.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace seccomp_agent {

void ForEachStatusField(absl::string_view status,
                        absl::FunctionRef<bool(absl::string_view, absl::string_view)> fn) {
  for (absl::string_view line : absl::StrSplit(status, '\n', absl::SkipEmpty())) {
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    if (!fn(line.substr(0, colon), absl::StripAsciiWhitespace(line.substr(colon + 1)))) return;
  }
}

std::optional<absl::string_view> StatusField(absl::string_view status, absl::string_view key) {
  std::optional<absl::string_view> out;
  ForEachStatusField(status, [&](absl::string_view k, absl::string_view v) {
    if (k != key) return true;
    out = v;
    return false;
  });
  return out;
}

std::vector<absl::string_view> StatusWords(absl::string_view value) {
  return absl::StrSplit(value, absl::ByAnyChar(" \t"), absl::SkipEmpty());
}

std::vector<absl::string_view> StatFieldsAfterComm(absl::string_view stat) {
  const size_t close = stat.rfind(')');
  if (close == absl::string_view::npos) return {};
  return absl::StrSplit(stat.substr(close + 1), absl::ByAnyChar(" \n"), absl::SkipEmpty());
}

}  // namespace seccomp_agent
