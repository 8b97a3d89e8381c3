#include "agent/policy/glob.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace seccomp_agent {
namespace {

// Length of the bracket expression starting at p[i] == '[', or 0 when it is
// not terminated. A `]` right after `[`, `[!` or `[^` is a member.
size_t BracketLength(absl::string_view p, size_t i) {
  size_t j = i + 1;
  if (j < p.size() && (p[j] == '!' || p[j] == '^')) ++j;
  if (j < p.size() && p[j] == ']') ++j;
  while (j < p.size() && p[j] != ']') {
    if (p[j] == '\\') ++j;
    ++j;
  }
  return j < p.size() ? j - i + 1 : 0;
}

// Whether `c` is in the bracket expression p[i, i+len).
bool BracketMatches(absl::string_view p, size_t i, size_t len, unsigned char c) {
  size_t j = i + 1;
  const size_t end = i + len - 1;  // the closing ']'
  bool negate = false;
  if (p[j] == '!' || p[j] == '^') {
    negate = true;
    ++j;
  }
  bool in = false;
  while (j < end) {
    unsigned char lo = static_cast<unsigned char>(p[j]);
    if (lo == '\\' && j + 1 < end) lo = static_cast<unsigned char>(p[++j]);
    ++j;
    unsigned char hi = lo;
    if (j + 1 < end && p[j] == '-') {
      hi = static_cast<unsigned char>(p[j + 1]);
      if (hi == '\\' && j + 2 < end) {
        hi = static_cast<unsigned char>(p[j + 2]);
        ++j;
      }
      j += 2;
    }
    if (c >= lo && c <= hi) in = true;
  }
  return in != negate;
}

// Matches one pattern token at p[pi] against t[ti]; sets *plen to the
// token's length. Precondition: p[pi] != '*'.
bool TokenMatches(absl::string_view p, size_t pi, char tc, size_t* plen) {
  char pc = p[pi];
  if (pc == '?') {
    *plen = 1;
    return true;
  }
  if (pc == '[') {
    size_t len = BracketLength(p, pi);
    if (len > 0) {
      *plen = len;
      return BracketMatches(p, pi, len, static_cast<unsigned char>(tc));
    }
    // Unterminated: a literal '[' (Compile rejects this; be safe anyway).
  }
  if (pc == '\\' && pi + 1 < p.size()) {
    *plen = 2;
    return p[pi + 1] == tc;
  }
  *plen = 1;
  return pc == tc;
}

// Classic greedy wildcard match with one backtrack point; correct because
// `*` is the only variable-length token. Linear-times-pattern worst case.
bool WildcardMatch(absl::string_view p, absl::string_view t) {
  size_t pi = 0, ti = 0;
  size_t star_p = absl::string_view::npos, star_t = 0;
  while (ti < t.size()) {
    size_t plen = 0;
    if (pi < p.size() && p[pi] == '*') {
      while (pi < p.size() && p[pi] == '*') ++pi;
      star_p = pi;
      star_t = ti;
      continue;
    }
    if (pi < p.size() && TokenMatches(p, pi, t[ti], &plen)) {
      pi += plen;
      ++ti;
      continue;
    }
    if (star_p == absl::string_view::npos) return false;
    pi = star_p;
    ti = ++star_t;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

absl::Status CheckSyntax(absl::string_view p) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      if (i + 1 == p.size()) return absl::InvalidArgumentError("trailing \"\\\" in glob");
      ++i;
    } else if (p[i] == '[') {
      size_t len = BracketLength(p, i);
      if (len == 0) return absl::InvalidArgumentError("unterminated \"[\" in glob");
      i += len - 1;
    }
  }
  return absl::OkStatus();
}

// Iterates the components of a path, skipping empty and "." ones.
class ComponentCursor {
 public:
  explicit ComponentCursor(absl::string_view s) : s_(s) { Skip(); }
  bool done() const { return pos_ >= s_.size(); }
  size_t pos() const { return pos_; }
  void Reset(size_t pos) {
    pos_ = pos;
    Skip();
  }
  absl::string_view Current() const {
    size_t end = s_.find('/', pos_);
    if (end == absl::string_view::npos) end = s_.size();
    return s_.substr(pos_, end - pos_);
  }
  void Next() {
    pos_ += Current().size();
    Skip();
  }

 private:
  void Skip() {
    while (pos_ < s_.size()) {
      if (s_[pos_] == '/') {
        ++pos_;
      } else if (s_[pos_] == '.' && (pos_ + 1 == s_.size() || s_[pos_ + 1] == '/')) {
        ++pos_;
      } else {
        break;
      }
    }
  }
  absl::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<FlatGlob> FlatGlob::Compile(absl::string_view pattern) {
  absl::Status s = CheckSyntax(pattern);
  if (!s.ok()) return s;
  FlatGlob g;
  g.pattern_ = std::string(pattern);
  return g;
}

bool FlatGlob::Matches(absl::string_view text) const { return WildcardMatch(pattern_, text); }

absl::StatusOr<PathGlob> PathGlob::Compile(absl::string_view pattern) {
  absl::Status s = CheckSyntax(pattern);
  if (!s.ok()) return s;
  PathGlob g;
  g.pattern_ = std::string(pattern);
  g.absolute_ = !pattern.empty() && pattern[0] == '/';
  ComponentCursor c(g.pattern_);
  for (; !c.done(); c.Next()) {
    absl::string_view comp = c.Current();
    Component pc;
    pc.begin = static_cast<uint32_t>(c.pos());
    pc.size = static_cast<uint32_t>(comp.size());
    pc.any_depth = comp == "**";
    absl::Status cs = CheckSyntax(comp);
    if (!cs.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("bad component \"", comp, "\": ", cs.message(),
                                                     " (\"/\" cannot be inside [...])"));
    }
    if (!pc.any_depth && comp.find("**") != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"**\" must be a whole path component (\"/a/**/b\"), got \"", comp, "\""));
    }
    g.components_.push_back(pc);
  }
  return g;
}

bool PathGlob::Matches(absl::string_view path) const {
  const bool text_absolute = !path.empty() && path[0] == '/';
  if (text_absolute != absolute_) return false;
  const absl::string_view pat = pattern_;
  // Greedy match over components, `**` playing the role of `*`.
  ComponentCursor t(path);
  size_t pi = 0;
  size_t star_p = SIZE_MAX, star_t = 0;
  while (!t.done()) {
    if (pi < components_.size() && components_[pi].any_depth) {
      star_p = ++pi;
      star_t = t.pos();
      continue;
    }
    if (pi < components_.size() &&
        WildcardMatch(pat.substr(components_[pi].begin, components_[pi].size), t.Current())) {
      ++pi;
      t.Next();
      continue;
    }
    if (star_p == SIZE_MAX) return false;
    pi = star_p;
    t.Reset(star_t);
    t.Next();
    star_t = t.pos();
  }
  while (pi < components_.size() && components_[pi].any_depth) ++pi;
  return pi == components_.size();
}

}  // namespace seccomp_agent
