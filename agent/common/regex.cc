#include "agent/common/regex.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace seccomp_agent {

absl::StatusOr<std::unique_ptr<const re2::RE2>> CompileRegex(absl::string_view pattern) {
  re2::RE2::Options opts;
  opts.set_encoding(re2::RE2::Options::EncodingLatin1);
  opts.set_max_mem(kRegexMaxMem);
  opts.set_log_errors(false);
  auto re =
      std::make_unique<const re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), opts);
  if (!re->ok()) {
    return absl::InvalidArgumentError(absl::StrCat("RE2 cannot compile it: ", re->error()));
  }
  return re;
}

std::string ReplaceAllLiteral(absl::string_view text, const re2::RE2& re,
                              absl::string_view literal) {
  std::string out(text);
  // RE2's rewrite string gives \0..\9 and \\ a meaning; escape the backslash.
  const std::string rewrite = absl::StrReplaceAll(literal, {{"\\", "\\\\"}});
  re2::RE2::GlobalReplace(&out, re, rewrite);
  return out;
}

}  // namespace seccomp_agent
