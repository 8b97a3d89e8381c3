#include "agent/policy/selector.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "agent/common/status.h"
#include "agent/policy/glob.h"
#include "yaml-cpp/yaml.h"

namespace seccomp_agent {
namespace {

absl::Status Err(absl::string_view source, absl::string_view key, absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", key, ": ", msg));
}

absl::StatusOr<std::string> Glob(const YAML::Node& n, absl::string_view source,
                                 absl::string_view key) {
  if (!n.IsScalar()) return Err(source, key, "expected a string");
  auto g = FlatGlob::Compile(n.Scalar());
  if (!g.ok()) return Err(source, key, g.status().message());
  return n.Scalar();
}

absl::Status ParseAnnotations(const YAML::Node& sv, absl::string_view source,
                              const std::string& where, PolicySelector* sel) {
  if (!sv.IsMap()) return Err(source, where + ".annotations", "expected a mapping");
  for (auto a = sv.begin(); a != sv.end(); ++a) {
    const YAML::Node av = a->second;
    const std::string ak = a->first.IsScalar() ? a->first.Scalar() : "";
    SA_ASSIGN_OR_RETURN(sel->annotations[ak],
                        Glob(av, source, absl::StrCat(where, ".annotations[\"", ak, "\"]")));
  }
  return absl::OkStatus();
}

absl::StatusOr<PolicySelector> ParseSelector(const YAML::Node& sn, absl::string_view source,
                                             const std::string& where) {
  if (!sn.IsMap()) return Err(source, where, "expected a mapping");
  PolicySelector sel;
  for (auto s = sn.begin(); s != sn.end(); ++s) {
    const YAML::Node sv = s->second;  // a copy: s-> is a temporary proxy
    const std::string sk = s->first.IsScalar() ? s->first.Scalar() : "";
    if (sk == "policy") {
      if (!sv.IsScalar()) return Err(source, where + ".policy", "expected a string");
      sel.policy = sv.Scalar();
    } else if (sk == "annotations") {
      SA_RETURN_IF_ERROR(ParseAnnotations(sv, source, where, &sel));
    } else if (sk == "id") {
      SA_ASSIGN_OR_RETURN(sel.id, Glob(sv, source, where + ".id"));
    } else if (sk == "metadata") {
      SA_ASSIGN_OR_RETURN(sel.metadata, Glob(sv, source, where + ".metadata"));
    } else {
      return Err(
          source, where,
          absl::StrCat("unknown key \"", sk, "\" (expected annotations, id, metadata, policy)"));
    }
  }
  absl::Status name_ok = CheckPolicyName(sel.policy);
  if (!name_ok.ok()) return Err(source, where + ".policy", name_ok.message());
  return sel;
}

bool GlobMatches(const std::string& glob, absl::string_view text) {
  auto g = FlatGlob::Compile(glob);  // checked at parse
  return g.ok() && g->Matches(text);
}

bool Matches(const PolicySelector& s, const SelectorInput& in) {
  for (const auto& [key, glob] : s.annotations) {
    if (in.annotations == nullptr) return false;
    auto a = in.annotations->find(key);
    if (a == in.annotations->end() || !GlobMatches(glob, a->second)) return false;
  }
  if (s.id && (!in.id || !GlobMatches(*s.id, *in.id))) return false;
  if (s.metadata && (!in.metadata || !GlobMatches(*s.metadata, *in.metadata))) return false;
  return true;
}

}  // namespace

absl::StatusOr<std::vector<PolicySelector>> ParseSelectors(const YAML::Node& list,
                                                           absl::string_view source) {
  if (!list.IsSequence()) return Err(source, "selectors", "expected a list");
  std::vector<PolicySelector> out;
  for (size_t i = 0; i < list.size(); ++i) {
    SA_ASSIGN_OR_RETURN(PolicySelector s,
                        ParseSelector(list[i], source, absl::StrCat("selectors[", i, "]")));
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<std::string> MatchSelectors(const std::vector<PolicySelector>& selectors,
                                          const SelectorInput& in) {
  for (const PolicySelector& s : selectors) {
    if (Matches(s, in)) return s.policy;
  }
  return std::nullopt;
}

absl::Status CheckPolicyName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("policy name is empty");
  if (name.size() > 200) return absl::InvalidArgumentError("policy name longer than 200 bytes");
  auto ok = [](char ch, bool first) {
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
      return true;
    }
    return !first && (ch == '_' || ch == '.' || ch == '-');
  };
  for (size_t i = 0; i < name.size(); ++i) {
    if (!ok(name[i], i == 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy name \"", name,
                       "\" must match [A-Za-z0-9][A-Za-z0-9_.-]* (a file name in policy_dir)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PolicyFileIn(absl::string_view dir, absl::string_view name) {
  std::vector<std::string> found;
  for (const char* ext : {".yaml", ".json"}) {
    std::string path = absl::StrCat(dir, "/", name, ext);
    if (access(path.c_str(), F_OK) == 0) found.push_back(std::move(path));
  }
  if (found.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("both ", found[0], " and ", found[1], " exist; keep one"));
  }
  return found.empty() ? std::string() : found[0];
}

}  // namespace seccomp_agent
