#include "oci-hook/hook.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "oci-hook/hook_protocol.h"
#include "oci-hook/hook_config.h"

namespace seccomp_agent::hook {
namespace {

constexpr char kUsage[] =
    "usage: seccomp-agent-hook [--config=PATH] [--quiet] precreate|createRuntime|prestart|poststop";

int Fail(HookIo& io, absl::string_view msg, int code = 1) {
  io.out.clear();
  absl::StrAppend(&io.err, "seccomp-agent-hook: ", msg, "\n");
  return code;
}

absl::StatusOr<HookRequest> StateToRequest(absl::string_view text, HookOp op) {
  using ojson = nlohmann::ordered_json;
  ojson st;
  try {
    st = ojson::parse(text.begin(), text.end());
  } catch (const ojson::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("OCI state on stdin: invalid JSON: ", e.what()));
  }
  if (!st.is_object())
    return absl::InvalidArgumentError("OCI state on stdin: expected a JSON object");
  HookRequest r;
  r.op = op;
  auto id = st.find("id");
  if (id == st.end() || !id->is_string() || id->get<std::string>().empty()) {
    return absl::InvalidArgumentError("OCI state on stdin: id: required non-empty string");
  }
  r.id = id->get<std::string>();
  if (auto pid = st.find("pid"); pid != st.end()) {
    if (!pid->is_number_integer() || (!pid->is_number_unsigned() && pid->get<int64_t>() < 0)) {
      return absl::InvalidArgumentError("OCI state on stdin: pid: expected a non-negative integer");
    }
    r.pid = pid->get<int64_t>();
  }
  if (auto b = st.find("bundle"); b != st.end() && b->is_string()) r.bundle = b->get<std::string>();
  if (auto a = st.find("annotations"); a != st.end() && a->is_object()) {
    for (auto it = a->begin(); it != a->end(); ++it) {
      if (it.value().is_string()) r.annotations[it.key()] = it.value().get<std::string>();
    }
  }
  return r;
}

}  // namespace

int RunHook(const std::vector<std::string>& args, HookIo& io, const HookEnv& env) {
  std::string config_path = kDefaultHookConfigPath;
  bool explicit_config = false;
  bool quiet = false;
  std::string mode;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (absl::StartsWith(a, "--config=")) {
      config_path = a.substr(9);
      explicit_config = true;
    } else if (a == "--config" && i + 1 < args.size()) {
      config_path = args[++i];
      explicit_config = true;
    } else if (a == "--quiet") {
      quiet = true;
    } else if (!a.empty() && a[0] == '-') {
      return Fail(io, absl::StrCat("unknown flag ", a, "\n", kUsage), 2);
    } else if (mode.empty()) {
      mode = a;
    } else {
      return Fail(io, absl::StrCat("unexpected argument ", a, "\n", kUsage), 2);
    }
  }
  if (mode.empty()) return Fail(io, kUsage, 2);
  auto config = LoadHookConfig(config_path, explicit_config);
  if (!config.ok()) return Fail(io, config.status().message());

  if (mode == "precreate") {
    PolicyLoader loader = env.loader ? env.loader : FilePolicyLoader(config->policy_dir);
    AgentProbe probe = env.probe ? env.probe : AgentProbe(SocketExists);
    auto res = Precreate(io.in, *config, loader, probe);
    if (!res.ok()) return Fail(io, res.status().message());
    for (const std::string& n : res->notes) {
      if (!quiet || absl::StartsWith(n, "WARNING"))
        absl::StrAppend(&io.err, "seccomp-agent-hook: ", n, "\n");
    }
    io.out = std::move(res->output);
    return 0;
  }
  HookOp op;
  if (mode == "createRuntime" || mode == "prestart") {
    op = HookOp::kCreateRuntime;
  } else if (mode == "poststop") {
    op = HookOp::kPoststop;
  } else {
    return Fail(io, absl::StrCat("unknown mode \"", mode, "\"\n", kUsage), 2);
  }
  auto req = StateToRequest(io.in, op);
  if (!req.ok()) return Fail(io, req.status().message());
  if (!SelectPolicy(*config, req->annotations)) {
    if (!quiet)
      absl::StrAppend(&io.err, "seccomp-agent-hook: ", req->id,
                      ": no seccomp-agent policy; nothing to tell the agent\n");
    return 0;
  }
  absl::Status s =
      SendHookRequest(config->hook_socket, *req, absl::Milliseconds(config->hook_timeout_ms));
  if (s.ok()) return 0;
  if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) {
    if (config->on_agent_down == OnAgentDown::kPass) {
      absl::StrAppend(&io.err, "seccomp-agent-hook: WARNING: agent unreachable (", s.message(),
                      "); on_agent_down: pass, ", HookOpName(op), " of ", req->id,
                      " not delivered\n");
      return 0;
    }
    return Fail(io, absl::StrCat("agent unreachable (", s.message(), "); on_agent_down: fail"));
  }
  return Fail(io, absl::StrCat(HookOpName(op), " of ", req->id, ": ", s.message()));
}

}  // namespace seccomp_agent::hook
