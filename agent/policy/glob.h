// Glob matching for policy rules. Matching never allocates.
//
// Syntax (both kinds): `*` any run of characters, `?` one character,
// `[abc]`, `[a-z]`, `[!a-z]` / `[^a-z]` one character of (not of) a set,
// `\x` the character x literally.
//
// PathGlob: `*`, `?` and `[...]` stay within one path component; a
// component that is exactly `**` matches zero or more whole components, so
// "/x/**" matches "/x", "/x/" and "/x/a/b" but not "/xy". A `**` that is not
// a whole component is rejected at compile time. Matching is lexical: empty
// components ("//") and "." components of the text are skipped, ".." is NOT
// resolved (see README: paths are snapshots, not a security boundary), and a
// relative text path ("foo", relative to the task's cwd or dirfd) is matched
// as-is, so it never matches an absolute glob.
// TODO(policy): resolve relative paths against the task's cwd / dirfd.
//
// FlatGlob: for ids, metadata, annotation values and socket addresses;
// `*` also matches "/".
#ifndef SECCOMP_AGENT_POLICY_GLOB_H_
#define SECCOMP_AGENT_POLICY_GLOB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace seccomp_agent {

class FlatGlob {
 public:
  FlatGlob() = default;
  // InvalidArgument for an unterminated `[` or a trailing `\`.
  static absl::StatusOr<FlatGlob> Compile(absl::string_view pattern);
  bool Matches(absl::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
};

class PathGlob {
 public:
  PathGlob() = default;
  // InvalidArgument as FlatGlob, and for a `**` inside a component.
  static absl::StatusOr<PathGlob> Compile(absl::string_view pattern);
  bool Matches(absl::string_view path) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Component {
    uint32_t begin = 0;  // into pattern_
    uint32_t size = 0;
    bool any_depth = false;  // the component is `**`
  };
  std::string pattern_;
  bool absolute_ = false;
  std::vector<Component> components_;  // without empty and "." components
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_POLICY_GLOB_H_
