#include "oci-hook/hook_config.h"

#include <errno.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/common/status.h"
#include "agent/policy/glob.h"
#include "yaml-cpp/yaml.h"

namespace seccomp_agent::hook {
namespace {

absl::Status Err(absl::string_view source, absl::string_view key, absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", key, ": ", msg));
}

absl::StatusOr<std::string> Str(const YAML::Node& n, absl::string_view source, absl::string_view key) {
  if (!n.IsScalar()) return Err(source, key, "expected a string");
  return n.Scalar();
}

absl::StatusOr<bool> Bool(const YAML::Node& n, absl::string_view source, absl::string_view key) {
  if (n.IsScalar() && n.Scalar() == "true") return true;
  if (n.IsScalar() && n.Scalar() == "false") return false;
  return Err(source, key, "expected true or false");
}

}  // namespace

absl::StatusOr<HookConfig> ParseHookConfig(absl::string_view text, absl::string_view source) {
  HookConfig c;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", e.mark.line + 1, ":",
                                                   e.mark.column + 1, ": syntax error: ", e.msg));
  }
  if (root.IsNull()) return c;
  if (!root.IsMap()) return Err(source, "(top level)", "expected a mapping");
  try {
    for (auto it = root.begin(); it != root.end(); ++it) {
      const std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
      const YAML::Node v = it->second;  // a copy: it-> is a temporary proxy
      if (key == "agent_socket" || key == "admin_socket" || key == "policy_dir") {
        SA_ASSIGN_OR_RETURN(std::string s, Str(v, source, key));
        if (s.empty() || s[0] != '/') return Err(source, key, "must be an absolute path");
        if (key != "policy_dir" && s.size() > 107) {
          return Err(source, key, "longer than a unix socket path can be (107 bytes)");
        }
        (key == "agent_socket" ? c.agent_socket : key == "admin_socket" ? c.admin_socket : c.policy_dir) = s;
      } else if (key == "compile") {
        SA_ASSIGN_OR_RETURN(c.compile, Bool(v, source, key));
      } else if (key == "on_agent_down") {
        SA_ASSIGN_OR_RETURN(std::string s, Str(v, source, key));
        if (s == "fail") {
          c.on_agent_down = OnAgentDown::kFail;
        } else if (s == "pass") {
          c.on_agent_down = OnAgentDown::kPass;
        } else {
          return Err(source, key, absl::StrCat("expected fail or pass, got \"", s, "\""));
        }
      } else if (key == "runtime") {
        SA_ASSIGN_OR_RETURN(std::string s, Str(v, source, key));
        if (s == "any") {
          c.runtime = TargetRuntime::kAny;
        } else if (s == "runc") {
          c.runtime = TargetRuntime::kRunc;
        } else if (s == "crun") {
          c.runtime = TargetRuntime::kCrun;
        } else {
          return Err(source, key, absl::StrCat("expected any, runc or crun, got \"", s, "\""));
        }
      } else if (key == "admin_timeout_ms") {
        SA_ASSIGN_OR_RETURN(std::string s, Str(v, source, key));
        int ms;
        if (!absl::SimpleAtoi(s, &ms) || ms < 1 || ms > 60000) {
          return Err(source, key, "expected milliseconds 1..60000");
        }
        c.admin_timeout_ms = ms;
      } else if (key == "selectors") {
        if (!v.IsSequence()) return Err(source, key, "expected a list");
        for (size_t i = 0; i < v.size(); ++i) {
          const std::string where = absl::StrCat("selectors[", i, "]");
          const YAML::Node sn = v[i];
          if (!sn.IsMap()) return Err(source, where, "expected a mapping");
          Selector sel;
          for (auto s = sn.begin(); s != sn.end(); ++s) {
            const YAML::Node sv = s->second;
            const std::string sk = s->first.IsScalar() ? s->first.Scalar() : "";
            if (sk == "policy") {
              SA_ASSIGN_OR_RETURN(sel.policy, Str(sv, source, where + ".policy"));
            } else if (sk == "annotations") {
              if (!sv.IsMap()) return Err(source, where + ".annotations", "expected a mapping");
              for (auto a = sv.begin(); a != sv.end(); ++a) {
                const YAML::Node av = a->second;
                const std::string ak = a->first.IsScalar() ? a->first.Scalar() : "";
                const std::string af = absl::StrCat(where, ".annotations[\"", ak, "\"]");
                SA_ASSIGN_OR_RETURN(std::string glob, Str(av, source, af));
                auto g = FlatGlob::Compile(glob);
                if (!g.ok()) return Err(source, af, g.status().message());
                sel.annotations[ak] = glob;
              }
            } else {
              return Err(source, where,
                         absl::StrCat("unknown key \"", sk, "\" (expected annotations, policy)"));
            }
          }
          absl::Status name_ok = CheckPolicyName(sel.policy);
          if (!name_ok.ok()) return Err(source, where + ".policy", name_ok.message());
          c.selectors.push_back(std::move(sel));
        }
      } else {
        return Err(source, "(top level)",
                   absl::StrCat("unknown key \"", key,
                                "\" (expected agent_socket, admin_socket, policy_dir, selectors, "
                                "compile, on_agent_down, runtime, admin_timeout_ms)"));
      }
    }
  } catch (const YAML::Exception& e) {
    return Err(source, "(top level)", e.what());
  }
  return c;
}

absl::StatusOr<HookConfig> LoadHookConfig(const std::string& path, bool must_exist) {
  std::ifstream in(path);
  if (!in) {
    const int err = errno;
    struct stat st;
    if (!must_exist && stat(path.c_str(), &st) != 0 && errno == ENOENT) return HookConfig{};
    return ErrnoStatus(err == 0 ? ENOENT : err, absl::StrCat("open hook config ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseHookConfig(ss.str(), path);
}

absl::Status CheckPolicyName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("policy name is empty");
  if (name.size() > 200) return absl::InvalidArgumentError("policy name longer than 200 bytes");
  auto ok = [](char ch, bool first) {
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) return true;
    return !first && (ch == '_' || ch == '.' || ch == '-');
  };
  for (size_t i = 0; i < name.size(); ++i) {
    if (!ok(name[i], i == 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "policy name \"", name, "\" must match [A-Za-z0-9][A-Za-z0-9_.-]* (a file name in policy_dir)"));
    }
  }
  return absl::OkStatus();
}

std::optional<std::string> SelectPolicy(const HookConfig& config,
                                        const std::map<std::string, std::string>& annotations) {
  auto it = annotations.find(kPolicyAnnotation);
  if (it != annotations.end()) return it->second;
  for (const Selector& s : config.selectors) {
    bool all = true;
    for (const auto& [key, glob] : s.annotations) {
      auto a = annotations.find(key);
      auto g = FlatGlob::Compile(glob);  // checked at load
      if (a == annotations.end() || !g.ok() || !g->Matches(a->second)) {
        all = false;
        break;
      }
    }
    if (all) return s.policy;
  }
  return std::nullopt;
}

std::set<std::string> ForbiddenNotifySyscalls(TargetRuntime runtime) {
  switch (runtime) {
    case TargetRuntime::kRunc:
      return {"write"};
    case TargetRuntime::kCrun:
      return {};
    case TargetRuntime::kAny:
      break;
  }
  return {"write"};
}

const char* TargetRuntimeName(TargetRuntime runtime) {
  switch (runtime) {
    case TargetRuntime::kRunc:
      return "runc";
    case TargetRuntime::kCrun:
      return "crun";
    case TargetRuntime::kAny:
      break;
  }
  return "any";
}

}  // namespace seccomp_agent::hook
