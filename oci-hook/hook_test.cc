// seccomp-agent-hook: precreate merging on runc-spec / podman / CRI-O shaped
// config.json samples, idempotence, refusals, the hook config, and the
// createRuntime / poststop messages against an in-test hook server.
#include "oci-hook/hook.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "oci-hook/hook_protocol.h"
#include "oci-hook/hook_config.h"
#include "oci-hook/precreate.h"

namespace seccomp_agent::hook {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using ojson = nlohmann::ordered_json;

constexpr char kPolicyDir[] = "oci-hook/testdata/policies";
constexpr char kAgent[] = "/run/seccomp-agent/agent.sock";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Sample(const std::string& name) { return ReadFile("oci-hook/testdata/" + name); }

HookConfig Config() {
  HookConfig c;
  c.agent_socket = kAgent;
  c.policy_dir = kPolicyDir;
  return c;
}

bool AgentUp(const std::string&) { return true; }
bool AgentDown(const std::string&) { return false; }

absl::StatusOr<PrecreateResult> RunPrecreate(const std::string& config_json, const HookConfig& c,
                                             AgentProbe probe = AgentUp) {
  return Precreate(config_json, c, FilePolicyLoader(c.policy_dir), probe);
}

// The config without linux.seccomp, re-serialized.
std::string WithoutSeccomp(const std::string& text) {
  ojson j = ojson::parse(text);
  if (j.contains("linux")) j["linux"].erase("seccomp");
  return j.dump();
}

ojson SeccompOf(const std::string& text) { return ojson::parse(text)["linux"]["seccomp"]; }

// The rules naming `s`, as compact JSON lines.
std::string RulesFor(const ojson& seccomp, const std::string& s) {
  std::string out;
  for (const ojson& r : seccomp["syscalls"]) {
    for (const ojson& n : r["names"]) {
      if (n == s) out += r.dump() + "\n";
    }
  }
  return out;
}

std::string WithAnnotation(const std::string& text, const std::string& policy) {
  ojson j = ojson::parse(text);
  j["annotations"][kPolicyAnnotation] = policy;
  return j.dump();
}

TEST(PrecreateTest, RuncSpecWithoutProfileGetsADefaultAllowProfile) {
  const std::string in = WithAnnotation(Sample("runc-spec.json"), "demo");
  auto r = RunPrecreate(in, Config());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->policy, "demo");
  ojson sc = SeccompOf(r->output);
  EXPECT_EQ(sc["defaultAction"], "SCMP_ACT_ALLOW");
  EXPECT_FALSE(sc.contains("architectures"));
  EXPECT_EQ(sc["listenerPath"], kAgent);
  EXPECT_EQ(sc["listenerMetadata"], "seccomp-agent.io/policy=demo");
  EXPECT_EQ(RulesFor(sc, "mkdir"), R"({"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"})"
                                   "\n");
  EXPECT_EQ(RulesFor(sc, "mkdirat"), R"({"names":["mkdirat"],"action":"SCMP_ACT_NOTIFY"})"
                                     "\n");
  EXPECT_EQ(
      RulesFor(sc, "socket"),
      R"({"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,"args":[{"index":0,"value":17,"valueTwo":0,"op":"SCMP_CMP_EQ"}]})"
      "\n");
  EXPECT_EQ(
      RulesFor(sc, "unshare"),
      R"({"names":["unshare"],"action":"SCMP_ACT_ERRNO","errnoRet":1,"args":[{"index":0,"value":268435456,"valueTwo":268435456,"op":"SCMP_CMP_MASKED_EQ"}]})"
      "\n");
  EXPECT_EQ(sc["syscalls"].size(), 4u);
  EXPECT_THAT(r->notify_syscalls, ::testing::ElementsAre("mkdir", "mkdirat"));
  EXPECT_THAT(r->kernel_syscalls, ::testing::ElementsAre("socket", "unshare"));
  EXPECT_EQ(WithoutSeccomp(r->output), WithoutSeccomp(in));
}

TEST(PrecreateTest, PodmanProfileIsMergedWithoutDisturbingOtherRules) {
  const std::string in = Sample("podman.json");
  auto r = RunPrecreate(in, Config());
  ASSERT_TRUE(r.ok()) << r.status();
  ojson base = SeccompOf(in);
  ojson sc = SeccompOf(r->output);
  // Untouched profile fields.
  EXPECT_EQ(sc["defaultAction"], base["defaultAction"]);
  EXPECT_EQ(sc["defaultErrnoRet"], base["defaultErrnoRet"]);
  EXPECT_EQ(sc["architectures"], base["architectures"]);
  EXPECT_EQ(sc["listenerPath"], kAgent);
  // mkdir/mkdirat/unshare left the big allow list; nothing else did.
  ojson allow_in = base["syscalls"][1], allow_out = sc["syscalls"][1];
  EXPECT_EQ(allow_out["action"], "SCMP_ACT_ALLOW");
  EXPECT_EQ(allow_in["names"].size(), allow_out["names"].size() + 3);
  for (const ojson& n : allow_in["names"]) {
    const bool taken = n == "mkdir" || n == "mkdirat" || n == "unshare";
    EXPECT_EQ(std::find(allow_out["names"].begin(), allow_out["names"].end(), n) !=
                  allow_out["names"].end(),
              !taken)
        << n;
  }
  // The other base rules, including personality 4294967295 and clone's
  // MASKED_EQ, are byte-for-byte the same.
  for (size_t i : {0u, 2u, 3u, 4u, 5u, 6u})
    EXPECT_EQ(sc["syscalls"][i].dump(), base["syscalls"][i].dump()) << i;
  EXPECT_THAT(sc["syscalls"][4].dump(), HasSubstr("4294967295"));
  // socket is allowed by podman only when arg0 != AF_VSOCK: that condition
  // stays and the rule becomes NOTIFY (the agent sees only what podman allows).
  EXPECT_EQ(
      RulesFor(sc, "socket"),
      R"({"names":["socket"],"action":"SCMP_ACT_NOTIFY","args":[{"index":0,"value":40,"valueTwo":0,"op":"SCMP_CMP_NE"}]})"
      "\n");
  // unshare: compiled deny plus the complement allowed explicitly (the
  // profile's default is ERRNO).
  EXPECT_EQ(
      RulesFor(sc, "unshare"),
      R"({"names":["unshare"],"action":"SCMP_ACT_ERRNO","errnoRet":1,"args":[{"index":0,"value":268435456,"valueTwo":268435456,"op":"SCMP_CMP_MASKED_EQ"}]})"
      "\n"
      R"({"names":["unshare"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":268435456,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]})"
      "\n");
  EXPECT_EQ(RulesFor(sc, "mkdir"), R"({"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"})"
                                   "\n");
  EXPECT_THAT(r->notify_syscalls, ::testing::ElementsAre("mkdir", "mkdirat", "socket"));
  EXPECT_THAT(r->kernel_syscalls, ::testing::ElementsAre("unshare"));
  EXPECT_EQ(WithoutSeccomp(r->output), WithoutSeccomp(in));
}

TEST(PrecreateTest, CrioSampleSelectedByNamespaceSelector) {
  const std::string in = Sample("crio.json");
  HookConfig c = Config();
  auto none = RunPrecreate(in, c);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->output, ojson::parse(in).dump() + "\n");  // no policy: unchanged
  EXPECT_EQ(none->policy, "");
  c.selectors.push_back(Selector{{{"io.kubernetes.pod.namespace", "dev-*"}}, "deny-mkdir"});
  c.selectors.push_back(Selector{{{"io.kubernetes.pod.namespace", "prod-*"}}, "demo"});
  auto r = RunPrecreate(in, c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->policy, "demo");
  ojson sc = SeccompOf(r->output);
  EXPECT_EQ(sc["listenerMetadata"], "seccomp-agent.io/policy=demo");
  EXPECT_EQ(WithoutSeccomp(r->output), WithoutSeccomp(in));
  // The ptrace rule with 18446744073709551615 came through exactly.
  EXPECT_THAT(
      r->output,
      HasSubstr(
          R"({"names":["ptrace"],"action":"SCMP_ACT_ERRNO","errnoRet":1,"args":[{"index":0,"value":18446744073709551615,"valueTwo":18446744073709551615,"op":"SCMP_CMP_MASKED_EQ"}]})"));
  EXPECT_THAT(r->output, HasSubstr(R"("hard":18446744073709551615,"soft":18446744073709551615)"));
  EXPECT_THAT(r->output, HasSubstr(R"("oomScoreAdj":-997)"));
}

TEST(PrecreateTest, BigIntegersRoundTripExactly) {
  const std::string in = Sample("bigints.json");
  auto r = RunPrecreate(in, Config());
  ASSERT_TRUE(r.ok()) << r.status();
  for (const char* s :
       {R"("uid":4294967295)", R"("gid":4294967294)", R"("additionalGids":[4294967295])",
        R"("hard":18446744073709551615,"soft":9223372036854775807)",
        R"("limit":9223372036854775807,"swap":-1,"kernel":-9223372036854775808)",
        R"("oomScoreAdj":-1000)", R"("x-float":0.1)"}) {
    EXPECT_THAT(r->output, HasSubstr(s));
  }
  ojson out = ojson::parse(r->output);
  EXPECT_EQ(out["process"]["user"]["uid"].get<uint64_t>(), 4294967295u);
  EXPECT_EQ(out["process"]["rlimits"].back()["hard"].get<uint64_t>(), 18446744073709551615ull);
  EXPECT_EQ(out["linux"]["resources"]["memory"]["kernel"].get<int64_t>(), INT64_MIN);
  EXPECT_EQ(WithoutSeccomp(r->output), WithoutSeccomp(in));
}

TEST(PrecreateTest, IdempotentOnEverySampleWithAndWithoutCompilation) {
  for (const char* sample : {"runc-spec.json", "podman.json", "crio.json", "bigints.json"}) {
    for (bool compile : {true, false}) {
      for (const char* policy : {"demo", "deny-mkdir", "mkdir-path"}) {
        HookConfig c = Config();
        c.compile = compile;
        const std::string in = WithAnnotation(Sample(sample), policy);
        auto once = RunPrecreate(in, c);
        ASSERT_TRUE(once.ok()) << sample << " " << policy << ": " << once.status();
        auto twice = RunPrecreate(once->output, c);
        ASSERT_TRUE(twice.ok()) << sample << " " << policy << ": " << twice.status();
        EXPECT_EQ(twice->output, once->output) << sample << " " << policy << " compile=" << compile;
        EXPECT_EQ(twice->notify_syscalls, once->notify_syscalls) << sample << " " << policy;
        EXPECT_EQ(WithoutSeccomp(once->output), WithoutSeccomp(in)) << sample << " " << policy;
      }
    }
  }
}

TEST(PrecreateTest, CompilationOffSendsEveryDecidedSyscallToTheAgent) {
  HookConfig c = Config();
  c.compile = false;
  auto r = RunPrecreate(WithAnnotation(Sample("runc-spec.json"), "demo"), c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->notify_syscalls, ::testing::ElementsAre("mkdir", "mkdirat", "socket", "unshare"));
  EXPECT_THAT(r->kernel_syscalls, IsEmpty());
  EXPECT_EQ(RulesFor(SeccompOf(r->output), "socket"),
            R"({"names":["socket"],"action":"SCMP_ACT_NOTIFY"})"
            "\n");
}

TEST(PrecreateTest, FullyCompiledPolicyStillNeedsNoListenerWhenNothingIsNotify) {
  // deny-mkdir has an rmdir path rule: NOTIFY. A policy with only the
  // mkdir rule would need no listener at all.
  HookConfig c = Config();
  auto loader = [](const std::string&) {
    return CompiledPolicy::LoadString(
        "version: 1\ndefault_action: {allow: {}}\nrules:\n"
        "  - {name: m, match: {syscalls: [mkdir]}, action: {deny: {errno: EACCES}}}\n",
        "inline");
  };
  auto r = Precreate(WithAnnotation(Sample("runc-spec.json"), "x"), c, loader, AgentDown);
  ASSERT_TRUE(r.ok()) << r.status();  // agent down does not matter: no NOTIFY
  ojson sc = SeccompOf(r->output);
  EXPECT_FALSE(sc.contains("listenerPath"));
  EXPECT_FALSE(sc.contains("listenerMetadata"));
  EXPECT_EQ(sc["syscalls"].dump(),
            R"([{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}])");
}

struct BadCase {
  const char* name;
  std::string input;
  std::string policy_dir;
  const char* want;
};

TEST(PrecreateTest, RefusalsSayWhy) {
  ojson other = ojson::parse(Sample("podman.json"));
  other["linux"]["seccomp"]["listenerPath"] = "/run/other-agent.sock";
  ojson notify_no_listener = ojson::parse(Sample("podman.json"));
  notify_no_listener["linux"]["seccomp"]["syscalls"].push_back(
      ojson::parse(R"({"names":["getpid"],"action":"SCMP_ACT_NOTIFY"})"));
  ojson other_meta = ojson::parse(Sample("podman.json"));
  other_meta["linux"]["seccomp"]["listenerPath"] = kAgent;
  other_meta["linux"]["seccomp"]["listenerMetadata"] = "seccomp-agent.io/policy=strict";
  ojson receiver = ojson::parse(Sample("podman.json"));
  receiver["annotations"]["run.oci.seccomp.receiver"] = "/run/crun-agent.sock";
  ojson deny_list = ojson::parse(WithAnnotation(Sample("runc-spec.json"), "demo"));
  deny_list["linux"]["seccomp"] = ojson::parse(
      R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["socket"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":40,"valueTwo":0,"op":"SCMP_CMP_EQ"}]}]})");
  const BadCase cases[] = {
      {"invalid json", "{\"ociVersion\": ", kPolicyDir, "config.json: invalid JSON"},
      {"not an object", "[1,2]", kPolicyDir, "config.json: expected a JSON object"},
      {"other listener", other.dump(), kPolicyDir, "listenerPath is already /run/other-agent.sock"},
      {"notify without listener", notify_no_listener.dump(), kPolicyDir,
       "SCMP_ACT_NOTIFY rules ({\"names\":[\"getpid\"]"},
      {"other policy metadata", other_meta.dump(), kPolicyDir,
       "listenerMetadata is \"seccomp-agent.io/policy=strict\", expected "
       "\"seccomp-agent.io/policy=demo\""},
      {"crun receiver", receiver.dump(), kPolicyDir,
       "run.oci.seccomp.receiver sends the seccomp listener"},
      {"unknown policy", WithAnnotation(Sample("podman.json"), "nosuch"), kPolicyDir,
       "policy \"nosuch\": no nosuch.yaml or nosuch.json in oci-hook/testdata/policies"},
      {"traversal", WithAnnotation(Sample("podman.json"), "../policies/demo"), kPolicyDir,
       "must match [A-Za-z0-9][A-Za-z0-9_.-]*"},
      {"broken policy", WithAnnotation(Sample("podman.json"), "broken"), kPolicyDir,
       "policy \"broken\": oci-hook/testdata/policies/broken.yaml: rules[0] \"typo\": "
       "match.syscalls[0]: "
       "unknown syscall \"mkdri\""},
      {"write under runc", WithAnnotation(Sample("runc-spec.json"), "redact-stdout"), kPolicyDir,
       "needs SCMP_ACT_NOTIFY on write, which the runtime (hook runtime: any)"},
      {"deny list", deny_list.dump(), kPolicyDir,
       "cannot merge policy \"demo\" for syscall socket"},
  };
  for (const BadCase& b : cases) {
    HookConfig c = Config();
    c.policy_dir = b.policy_dir;
    auto r = RunPrecreate(b.input, c);
    ASSERT_FALSE(r.ok()) << b.name;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(b.want)) << b.name;
  }
}

TEST(PrecreateTest, WriteNotifyIsAcceptedWhenConfiguredForCrun) {
  HookConfig c = Config();
  c.runtime = TargetRuntime::kRunc;
  EXPECT_FALSE(RunPrecreate(WithAnnotation(Sample("runc-spec.json"), "redact-stdout"), c).ok());
  c.runtime = TargetRuntime::kCrun;
  auto r = RunPrecreate(WithAnnotation(Sample("runc-spec.json"), "redact-stdout"), c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->notify_syscalls, ::testing::ElementsAre("write"));
}

TEST(PrecreateTest, AgentDownFailsOrPassesUnchanged) {
  const std::string in = Sample("podman.json");
  HookConfig c = Config();
  auto fail = RunPrecreate(in, c, AgentDown);
  ASSERT_FALSE(fail.ok());
  EXPECT_THAT(std::string(fail.status().message()),
              HasSubstr("agent socket /run/seccomp-agent/agent.sock is not there"));
  c.on_agent_down = OnAgentDown::kPass;
  auto pass = RunPrecreate(in, c, AgentDown);
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->output, ojson::parse(in).dump() + "\n");
  ASSERT_FALSE(pass->notes.empty());
  EXPECT_THAT(pass->notes.back(), StartsWith("WARNING: agent socket"));
}

// ---- The command line ------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/sahookXXXXXX";
    path_ = mkdtemp(t);
  }
  ~TempDir() { (void)!system(("rm -rf " + path_).c_str()); }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

std::string HookJson(const std::string& extra = "") {
  char cwd[4096];
  const std::string dir = absl::StrCat(getcwd(cwd, sizeof(cwd)), "/", kPolicyDir);
  return absl::StrCat("{\"agent_socket\": \"", kAgent, "\", \"policy_dir\": \"", dir, "\"", extra,
                      "}");
}

TEST(RunHookTest, PrecreateWritesOutputOnlyOnSuccess) {
  TempDir d;
  const std::string cfg = d.Write("hook.json", HookJson());
  HookEnv env;
  env.probe = AgentUp;
  HookIo ok;
  ok.in = Sample("podman.json");
  EXPECT_EQ(RunHook({"--config=" + cfg, "precreate"}, ok, env), 0) << ok.err;
  EXPECT_FALSE(ok.out.empty());
  EXPECT_THAT(
      ok.err,
      HasSubstr(
          "seccomp-agent-hook: policy \"demo\": notify [mkdir,mkdirat,socket], kernel [unshare]"));

  // NOTIFY rules already sent to another agent.
  ojson other = ojson::parse(Sample("podman.json"));
  other["linux"]["seccomp"]["listenerPath"] = "/run/other-agent.sock";
  other["linux"]["seccomp"]["syscalls"].push_back(
      ojson::parse(R"({"names":["getpid"],"action":"SCMP_ACT_NOTIFY"})"));
  struct Bad {
    std::string input;
    const char* want;
  };
  for (const Bad& bad :
       {Bad{"{\"ociVersion\": \"1.0.2\", ", "config.json: invalid JSON"},
        Bad{other.dump(), "listenerPath is already /run/other-agent.sock"},
        Bad{WithAnnotation(Sample("podman.json"), "broken"), "unknown syscall \"mkdri\""},
        Bad{WithAnnotation(Sample("podman.json"), "nosuch"),
            "no nosuch.yaml or nosuch.json in "}}) {
    HookIo io;
    io.in = bad.input;
    EXPECT_EQ(RunHook({"--config", cfg, "precreate"}, io, env), 1) << bad.want;
    EXPECT_EQ(io.out, "") << bad.want;
    EXPECT_THAT(io.err, StartsWith("seccomp-agent-hook: ")) << bad.want;
    EXPECT_THAT(io.err, HasSubstr(bad.want));
    EXPECT_EQ(std::count(io.err.begin(), io.err.end(), '\n'), 1) << io.err;  // one clear line
  }
}

TEST(RunHookTest, UsageAndConfigErrors) {
  TempDir d;
  HookIo io;
  EXPECT_EQ(RunHook({}, io), 2);
  EXPECT_THAT(io.err, HasSubstr("usage:"));
  io = HookIo();
  EXPECT_EQ(RunHook({"--config=" + d.path() + "/missing.json", "precreate"}, io), 1);
  EXPECT_THAT(io.err, HasSubstr("open hook config"));
  io = HookIo();
  EXPECT_EQ(RunHook({"--config=" + d.Write("h.json", HookJson()), "frobnicate"}, io), 2);
  EXPECT_THAT(io.err, HasSubstr("unknown mode \"frobnicate\""));
  struct C {
    const char* text;
    const char* want;
  };
  for (const C& c : {C{"{\"compile\": \"yes\"}", "compile: expected true or false"},
                     C{"{\"on_agent_down\": \"maybe\"}", "expected fail or pass"},
                     C{"{\"agent_socket\": \"relative.sock\"}", "must be an absolute path"},
                     C{"{\"bogus\": 1}", "unknown key \"bogus\""},
                     C{"{\"selectors\": [{\"policy\": \"../x\"}]}", "selectors[0].policy"},
                     C{"{\"runtime\": \"docker\"}", "expected any, runc or crun"},
                     C{"{\"compile\": [", "syntax error"}}) {
    auto r = ParseHookConfig(c.text, "hook.json");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.want)) << c.text;
  }
  auto y = ParseHookConfig(R"(# YAML works too
agent_socket: /run/a.sock
hook_socket: /run/b.sock
policy_dir: /etc/p
compile: false
on_agent_down: pass
runtime: crun
hook_timeout_ms: 500
selectors:
  - {annotations: {"io.kubernetes.pod.namespace": "prod-*"}, policy: strict}
  - {policy: everyone}
)",
                           "hook.yaml");
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->agent_socket, "/run/a.sock");
  EXPECT_FALSE(y->compile);
  EXPECT_EQ(y->on_agent_down, OnAgentDown::kPass);
  EXPECT_EQ(y->runtime, TargetRuntime::kCrun);
  EXPECT_EQ(y->hook_timeout_ms, 500);
  ASSERT_EQ(y->selectors.size(), 2u);
  EXPECT_EQ(SelectPolicy(*y, {{"io.kubernetes.pod.namespace", "prod-eu"}}), "strict");
  EXPECT_EQ(SelectPolicy(*y, {{"io.kubernetes.pod.namespace", "dev"}}), "everyone");
  EXPECT_EQ(SelectPolicy(
                *y, {{kPolicyAnnotation, "explicit"}, {"io.kubernetes.pod.namespace", "prod-eu"}}),
            "explicit");
  EXPECT_EQ(SelectPolicy(HookConfig{}, {}), std::nullopt);

  // The keys' earlier names (before the hook socket was told apart from the
  // agent's gRPC admin socket) still load.
  auto old =
      ParseHookConfig(R"({"admin_socket": "/run/h.sock", "admin_timeout_ms": 700})", "hook.json");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->hook_socket, "/run/h.sock");
  EXPECT_EQ(old->hook_timeout_ms, 700);
}

class Recorder : public HookHandler {
 public:
  absl::Status Handle(const HookRequest& r, const PeerCred& peer) override {
    std::lock_guard<std::mutex> l(mu_);
    got_.push_back(r);
    peer_uid_ = peer.uid;
    return reply_;
  }
  std::vector<HookRequest> got() {
    std::lock_guard<std::mutex> l(mu_);
    return got_;
  }
  absl::Status reply_ = absl::OkStatus();
  uid_t peer_uid_ = 12345;

 private:
  std::mutex mu_;
  std::vector<HookRequest> got_;
};

constexpr char kState[] =
    R"({"ociVersion":"1.0.2","id":"ctr-1","status":"created","pid":4242,"bundle":"/b/ctr-1",)"
    R"("annotations":{"seccomp-agent.io/policy":"demo","k":"v"}})";

TEST(RunHookTest, CreateRuntimeAndPoststopTellTheAgent) {
  TempDir d;
  const std::string sock = d.path() + "/hook.sock";
  Recorder rec;
  auto server = HookServer::Start(sock, &rec);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string cfg =
      d.Write("hook.json", HookJson(absl::StrCat(", \"hook_socket\": \"", sock, "\"")));
  HookIo io;
  io.in = kState;
  EXPECT_EQ(RunHook({"--config=" + cfg, "createRuntime"}, io), 0) << io.err;
  io = HookIo();
  io.in =
      R"({"ociVersion":"1.0.2","id":"ctr-1","status":"stopped","bundle":"/b/ctr-1","annotations":{"seccomp-agent.io/policy":"demo"}})";
  EXPECT_EQ(RunHook({"--config=" + cfg, "poststop"}, io), 0) << io.err;
  // No policy for this container: nothing is sent.
  io = HookIo();
  io.in = R"({"ociVersion":"1.0.2","id":"other","status":"created","pid":7})";
  EXPECT_EQ(RunHook({"--config=" + cfg, "createRuntime"}, io), 0) << io.err;
  auto got = rec.got();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].op, HookOp::kCreateRuntime);
  EXPECT_EQ(got[0].id, "ctr-1");
  EXPECT_EQ(got[0].pid, 4242);
  EXPECT_EQ(got[0].bundle, "/b/ctr-1");
  EXPECT_EQ(got[0].annotations.at("k"), "v");
  EXPECT_EQ(got[1].op, HookOp::kPoststop);
  EXPECT_EQ(got[1].pid, 0);
  EXPECT_EQ(rec.peer_uid_, getuid());
  // The agent refuses: the hook fails with its reason.
  rec.reply_ = absl::FailedPreconditionError("registry full");
  io = HookIo();
  io.in = kState;
  EXPECT_EQ(RunHook({"--config=" + cfg, "createRuntime"}, io), 1);
  EXPECT_THAT(io.err, HasSubstr("createRuntime of ctr-1: agent refused: registry full"));
  // Bad state JSON.
  io = HookIo();
  io.in = "{";
  EXPECT_EQ(RunHook({"--config=" + cfg, "poststop"}, io), 1);
  EXPECT_THAT(io.err, HasSubstr("OCI state on stdin: invalid JSON"));
}

TEST(RunHookTest, AgentDownFailsOrPassesWithinTheTimeout) {
  TempDir d;
  const std::string missing = d.path() + "/nobody.sock";
  for (bool pass : {false, true}) {
    const std::string cfg =
        d.Write("hook.json",
                HookJson(absl::StrCat(", \"hook_socket\": \"", missing, "\", \"on_agent_down\": \"",
                                      pass ? "pass" : "fail", "\"")));
    HookIo io;
    io.in = kState;
    EXPECT_EQ(RunHook({"--config=" + cfg, "createRuntime"}, io), pass ? 0 : 1);
    EXPECT_THAT(io.err, HasSubstr("agent unreachable (connect " + missing));
    if (pass) {
      EXPECT_THAT(io.err, HasSubstr("WARNING"));
    }
  }
  // A socket that accepts but never answers: bounded by hook_timeout_ms.
  const std::string mute = d.path() + "/mute.sock";
  UniqueFd l(socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un sa = {};
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", mute.c_str());
  ASSERT_EQ(bind(l.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(listen(l.get(), 4), 0);
  const std::string cfg = d.Write(
      "hook.json",
      HookJson(absl::StrCat(", \"hook_socket\": \"", mute, "\", \"hook_timeout_ms\": 300")));
  HookIo io;
  io.in = kState;
  const absl::Time t0 = absl::Now();
  EXPECT_EQ(RunHook({"--config=" + cfg, "createRuntime"}, io), 1);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
  EXPECT_THAT(io.err, HasSubstr("timed out"));
}

}  // namespace
}  // namespace seccomp_agent::hook
