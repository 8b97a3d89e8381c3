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

absl::StatusOr<std::string> Str(const YAML::Node& n, absl::string_view source,
                                absl::string_view key) {
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
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
      // The names these keys had before the hook socket was told apart from
      // the agent's gRPC admin socket; files that use them still load.
      if (key == "admin_socket") key = "hook_socket";
      if (key == "admin_timeout_ms") key = "hook_timeout_ms";
      const YAML::Node v = it->second;  // a copy: it-> is a temporary proxy
      if (key == "agent_socket" || key == "hook_socket" || key == "policy_dir") {
        SA_ASSIGN_OR_RETURN(std::string s, Str(v, source, key));
        if (s.empty() || s[0] != '/') return Err(source, key, "must be an absolute path");
        if (key != "policy_dir" && s.size() > 107) {
          return Err(source, key, "longer than a unix socket path can be (107 bytes)");
        }
        (key == "agent_socket"  ? c.agent_socket
         : key == "hook_socket" ? c.hook_socket
                                : c.policy_dir) = s;
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
      } else if (key == "hook_timeout_ms") {
        SA_ASSIGN_OR_RETURN(std::string s, Str(v, source, key));
        int ms;
        if (!absl::SimpleAtoi(s, &ms) || ms < 1 || ms > 60000) {
          return Err(source, key, "expected milliseconds 1..60000");
        }
        c.hook_timeout_ms = ms;
      } else if (key == "selectors") {
        SA_ASSIGN_OR_RETURN(c.selectors, ParseSelectors(v, source));
      } else {
        return Err(source, "(top level)",
                   absl::StrCat("unknown key \"", key,
                                "\" (expected agent_socket, hook_socket, policy_dir, selectors, "
                                "compile, on_agent_down, runtime, hook_timeout_ms)"));
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

std::optional<std::string> SelectPolicy(const HookConfig& config,
                                        const std::map<std::string, std::string>& annotations) {
  auto it = annotations.find(kPolicyAnnotation);
  if (it != annotations.end()) return it->second;
  return MatchSelectors(config.selectors, SelectorInput{&annotations});
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
