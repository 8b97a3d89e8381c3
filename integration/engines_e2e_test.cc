// The agent under real container engines instead of runc/crun by hand:
//   * podman 4.3 (crun and runc): a seccomp profile with listenerPath and
//     listenerMetadata; the OCI hook from a hooks.d directory wiring a
//     container started with the annotation seccomp-agent.io/policy; a
//     container without it left alone;
//   * the agent's OCI image run under podman the way the DaemonSet runs it
//     (flags derived from deploy/kubernetes/daemonset.yaml), serving the
//     example pod under `podman kube play` through the ConfigMap's profile;
//   * containerd 1.6 started by the test, an image imported from an OCI
//     archive, `ctr run --seccomp-profile` under runc and crun.
// Everything runs in a private mount namespace (engines.h) with podman's
// storage and containerd's root under a temp dir. A missing engine fails.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/container.h"
#include "integration/harness/engines.h"
#include "integration/harness/test_util.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace seccomp_agent::integration {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kImage[] = "localhost/sa-busybox:e2e";
constexpr char kNodeSocketDir[] = "/run/seccomp-agent";

// The test agent's default policy (--policy). A profile written by hand
// with listenerMetadata "tenant-a" gets EPERM in /forbidden; nothing else
// is denied there, so the EACCES a hook-wired container gets comes from
// the policy it is bound to by name.
constexpr char kAgentPolicy[] = R"(version: 1
default_action: {allow: {}}
redirect_roots: [/etc]
rules:
  - name: profile-forbidden
    match: {containers: {metadata: "tenant-a"}, syscalls: [mkdir, mkdirat],
            args: {path: "/forbidden/**"}}
    action: {deny: {errno: EPERM}}
  - name: fake-success
    match: {syscalls: [mkdir, mkdirat], args: {path: "/fake*"}}
    action: {return: {value: 0}}
  - name: motd-redirect
    match: {syscalls: [openat], args: {path: "/etc/motd"}}
    action: {redirect_open: {exact: {"/etc/motd": "/etc/motd.alt"}}}
)";

// policy_dir/strict.yaml, shared by the hook (it compiles it into the
// profile: every rule needs the path, so all become SCMP_ACT_NOTIFY) and the
// agent (--hook_config: it binds a container whose listenerMetadata is
// seccomp-agent.io/policy=strict to this file).
constexpr char kHookPolicy[] = R"(version: 1
default_action: {allow: {}}
redirect_roots: [/etc]
rules:
  - name: hook-forbidden
    match: {syscalls: [mkdir, mkdirat], args: {path: "/forbidden/**"}}
    action: {deny: {errno: EACCES}}
  - name: fake-success
    match: {syscalls: [mkdir, mkdirat], args: {path: "/fake*"}}
    action: {return: {value: 0}}
  - name: motd-redirect
    match: {syscalls: [openat], args: {path: "/etc/motd"}}
    action: {redirect_open: {exact: {"/etc/motd": "/etc/motd.alt"}}}
)";

// Denied, spoofed, redirected and allowed calls, each printing what it saw.
constexpr char kScript[] =
    "mkdir /forbidden/x; echo deny_rc=$?; mkdir /fake1; echo spoof_rc=$?; "
    "[ -d /fake1 ] || echo fake_absent; cat /etc/motd; mkdir /tmp/ok && echo allow_ok";

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  return f ? absl::OkStatus() : absl::InternalError("cannot write " + path);
}

std::string ProfileJson(const std::string& socket, const std::string& metadata) {
  return nlohmann::json{
      {"defaultAction", "SCMP_ACT_ALLOW"},
      {"listenerPath", socket},
      {"listenerMetadata", metadata},
      {"syscalls", {{{"names", {"mkdir", "mkdirat", "openat"}}, {"action", "SCMP_ACT_NOTIFY"}}}}}
      .dump();
}

// ---- shared state: one agent, one podman storage, one image ----

absl::Status* g_namespace_status = nullptr;

struct Shared {
  absl::Status status = absl::UnknownError("environment not set up");
  std::optional<TempDir> work;
  std::unique_ptr<Podman> podman;
  std::unique_ptr<Agent> agent;
  std::string rootfs, rootfs_tar;
  std::string W(const std::string& rel) const { return work->path() + "/" + rel; }
};
Shared* g = nullptr;

// The hook's config and policy_dir. Written before the agent starts (it
// reads them through --hook_config), so the sockets are links under the
// work dir, pointed at the agent's once it runs.
absl::Status WriteHookConfig() {
  fs::create_directories(g->W("policies"));
  SA_RETURN_IF_ERROR(WriteText(g->W("policies/strict.yaml"), kHookPolicy));
  return WriteText(g->W("hook.json"), nlohmann::json{{"agent_socket", g->W("agent.sock")},
                                                     {"hook_socket", g->W("hook.sock")},
                                                     {"policy_dir", g->W("policies")},
                                                     {"compile", true},
                                                     {"on_agent_down", "fail"},
                                                     {"runtime", "any"}}
                                          .dump(2));
}

absl::Status InstallHook() {
  const std::string sock = g->agent->socket_path();
  fs::create_symlink(sock, g->W("agent.sock"));
  fs::create_symlink(sock.substr(0, sock.rfind('/')) + "/hook.sock", g->W("hook.sock"));
  return Must({"sh", Runfile("oci-hook/install.sh"), "--binary",
               Runfile("oci-hook/seccomp-agent-hook"), "--prefix", g->W("prefix"), "--hooks-dir",
               g->podman->hooks_dir(), "--config", g->W("hook.json")})
      .status();
}

absl::Status SetUpShared() {
  SA_RETURN_IF_ERROR(*g_namespace_status);
  SA_RETURN_IF_ERROR(RequireTools({"podman", "conmon", "crun", "runc", "containerd",
                                   "containerd-shim-runc-v2", "ctr", "umoci", "tar"}));
  SA_ASSIGN_OR_RETURN(TempDir work, TempDir::Make("sa-engines"));
  g->work.emplace(std::move(work));
  g->rootfs = g->W("rootfs");
  g->rootfs_tar = g->W("busybox.tar");
  SA_RETURN_IF_ERROR(BuildEngineRootfsTar(g->rootfs, g->rootfs_tar));
  fs::create_directories(g->W("podman"));
  SA_ASSIGN_OR_RETURN(g->podman, Podman::Create(g->W("podman")));
  SA_RETURN_IF_ERROR(g->podman->ImportRootfs(g->rootfs_tar, kImage));
  // The example pod's and the DaemonSet init container's image, offline.
  SA_RETURN_IF_ERROR(g->podman->Must({"tag", kImage, "docker.io/library/busybox:1.36"}).status());
  SA_RETURN_IF_ERROR(WriteHookConfig());
  AgentOptions options;
  options.policy_yaml = kAgentPolicy;
  options.extra_flags = {"--hook_config=" + g->W("hook.json")};
  SA_ASSIGN_OR_RETURN(g->agent, Agent::Start(options));
  return InstallHook();
}

class EnginesEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { g->status = SetUpShared(); }
  void TearDown() override {
    g->podman.reset();
    g->agent.reset();
    g->work.reset();
  }
};

#define REQUIRE_ENV() ASSERT_TRUE(g->status.ok()) << "cannot run: " << g->status

// ---- checks shared by the engines ----

// What the container printed when the agent decided its calls.
void ExpectAgentOutcome(const std::string& out, const std::string& deny_text) {
  EXPECT_THAT(out, HasSubstr("mkdir: can't create directory '/forbidden/x': " + deny_text));
  EXPECT_EQ(Field(out, "deny_rc"), 1) << out;
  EXPECT_EQ(Field(out, "spoof_rc"), 0) << out;
  EXPECT_THAT(out, HasSubstr("fake_absent"));
  EXPECT_THAT(out, HasSubstr("redirected-by-agent"));
  EXPECT_THAT(out, HasSubstr("allow_ok"));
}

std::optional<nlohmann::json> ByRule(const std::vector<nlohmann::json>& ds,
                                     const std::string& rule) {
  for (const auto& d : ds) {
    if (d.value("rule", "") == rule) return d;
  }
  return std::nullopt;
}

// The decision log names container `id` with the three decisions.
void ExpectDecisions(const std::string& id, const std::string& deny_rule,
                     const std::string& deny_errno) {
  auto all = [&](const std::vector<nlohmann::json>& ds) {
    return ByRule(ds, deny_rule) && ByRule(ds, "fake-success") && ByRule(ds, "motd-redirect");
  };
  ASSERT_TRUE(g->agent->WaitForDecisions(id, all, absl::Seconds(10)))
      << "decisions of " << id << ":\n"
      << nlohmann::json(g->agent->DecisionsFor(id)).dump(1);
  auto ds = g->agent->DecisionsFor(id);
  EXPECT_EQ((*ByRule(ds, deny_rule))["result"], deny_errno);
  EXPECT_EQ((*ByRule(ds, "fake-success"))["result"], "0");
  EXPECT_EQ((*ByRule(ds, "motd-redirect"))["action"], "redirect_open");
  EXPECT_TRUE(absl::StartsWith((*ByRule(ds, "motd-redirect"))["result"].get<std::string>(), "fd "))
      << (*ByRule(ds, "motd-redirect")).dump();
}

// The agent registered `id` as handed over by `runtime`.
void ExpectRegistered(const std::string& id, const std::string& runtime) {
  auto line = g->agent->WaitForLog("container " + id + " registered", absl::Seconds(10));
  ASSERT_TRUE(line.has_value()) << g->agent->Stderr();
  EXPECT_THAT(*line, HasSubstr("runtime " + runtime));
}

// ---- podman run ----

class PodmanRuntimeTest : public ::testing::TestWithParam<std::string> {
 protected:
  // `podman run` in the foreground; returns the container's full id.
  std::string RunNamed(const std::string& name, const std::vector<std::string>& opts,
                       std::string* out) {
    std::vector<std::string> args = {"run",       "--name",  name, "--network=none",
                                     "--runtime", GetParam()};
    args.insert(args.end(), opts.begin(), opts.end());
    args.insert(args.end(), {kImage, "sh", "-c", kScript});
    ProcessResult r = g->podman->Run(args);
    *out = r.out + r.err;
    EXPECT_EQ(r.exit.exit_code, 0) << r.Describe();
    auto id = g->podman->Id(name);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or("");
  }
  void TearDown() override {
    if (g->podman != nullptr) g->podman->RemoveAllContainers();
  }
};

TEST_P(PodmanRuntimeTest, ProfileWithListenerPathReachesTheAgent) {
  REQUIRE_ENV();
  const std::string profile = g->W("profile-" + GetParam() + ".json");
  ASSERT_TRUE(WriteText(profile, ProfileJson(g->agent->socket_path(), "tenant-a")).ok());
  std::string out;
  const std::string id =
      RunNamed("sa-profile-" + GetParam(), {"--security-opt", "seccomp=" + profile}, &out);
  ASSERT_FALSE(id.empty());
  ExpectAgentOutcome(out, "Operation not permitted");
  ExpectRegistered(id, GetParam());
  // listenerMetadata arrived: only "tenant-a" selects the EPERM rule.
  ExpectDecisions(id, "profile-forbidden", "EPERM");
}

TEST_P(PodmanRuntimeTest, HookFromHooksDirWiresAnnotatedContainer) {
  REQUIRE_ENV();
  const std::string name = "sa-hook-" + GetParam();
  std::string out;
  const std::string id = RunNamed(name, {"--annotation", "seccomp-agent.io/policy=strict"}, &out);
  ASSERT_FALSE(id.empty());
  ExpectAgentOutcome(out, "Permission denied");
  // precreate rewrote the spec podman handed to the runtime.
  auto config = g->podman->OciConfig(id);
  ASSERT_TRUE(config.ok()) << config.status();
  const nlohmann::json& sec = (*config)["linux"]["seccomp"];
  EXPECT_EQ(sec.value("listenerPath", ""), g->W("agent.sock")) << sec.dump();
  EXPECT_EQ(sec.value("listenerMetadata", ""), "seccomp-agent.io/policy=strict");
  ExpectRegistered(id, GetParam());
  ExpectDecisions(id, "hook-forbidden", "EACCES");
  // The agent bound the container to policy_dir/strict.yaml by that name.
  for (const auto& d : g->agent->DecisionsFor(id)) {
    EXPECT_TRUE(absl::StartsWith(d.value("policy", ""), "strict")) << d.dump();
  }
  // createRuntime and poststop reached the agent's hook socket.
  EXPECT_TRUE(g->agent->WaitForLog("hook: container " + id + " created", absl::Seconds(10)))
      << g->agent->Stderr();
  EXPECT_TRUE(g->agent->WaitForLog("hook: container " + id + " stopped", absl::Seconds(30)))
      << g->agent->Stderr();
  // The decision log's id is podman's: `podman inspect NAME` gives it. The
  // name itself is in neither the spec nor the state podman hands over.
  for (const auto& [k, v] : (*config)["annotations"].items()) {
    EXPECT_NE(v, name) << "podman now passes the container name as " << k << ": update README";
  }
}

INSTANTIATE_TEST_SUITE_P(Runtimes, PodmanRuntimeTest, ::testing::Values("crun", "runc"),
                         [](const auto& info) { return info.param; });

TEST(Podman, ContainerWithoutAnnotationIsUntouched) {
  REQUIRE_ENV();
  ProcessResult r = g->podman->Run({"run", "--name", "sa-plain", "--network=none", kImage, "sh",
                                    "-c", "mkdir /forbidden/x; echo made_rc=$?"});
  EXPECT_EQ(Field(r.out, "made_rc"), 0) << r.Describe();
  auto id = g->podman->Id("sa-plain");
  ASSERT_TRUE(id.ok()) << id.status();
  auto config = g->podman->OciConfig(*id);
  ASSERT_TRUE(config.ok()) << config.status();
  const nlohmann::json& sec = (*config)["linux"]["seccomp"];
  EXPECT_FALSE(sec.contains("listenerPath")) << sec.dump().substr(0, 400);
  EXPECT_FALSE(sec.contains("listenerMetadata"));
  EXPECT_EQ(sec.value("defaultAction", ""), "SCMP_ACT_ERRNO") << "podman's default profile";
  EXPECT_EQ(g->agent->CountLog(*id), 0) << g->agent->Stderr();
  EXPECT_TRUE(g->agent->DecisionsFor(*id).empty());
  g->podman->Run({"rm", "--force", "sa-plain"});
}

// ---- the DaemonSet and the example pod ----

YAML::Node LoadManifest(const std::string& name) {
  return YAML::LoadFile(Runfile("deploy/kubernetes/" + name));
}

bool Flag(const YAML::Node& n, const char* key, bool value) {
  return n[key] && n[key].as<bool>() == value;
}

// Host directories for a pod spec's volumes, the way a kubelet provides
// them: a hostPath under /run as is (/run is the test's tmpfs), any other
// hostPath under `root` (never the host's /var/lib/kubelet), a configMap
// as a directory with its items, an absent optional secret as an empty one.
absl::StatusOr<std::map<std::string, std::string>> KubeVolumes(const YAML::Node& spec,
                                                               const YAML::Node& configmap,
                                                               const std::string& root) {
  std::map<std::string, std::string> dirs;
  for (const auto& v : spec["volumes"]) {
    const std::string name = v["name"].as<std::string>();
    std::string dir;
    if (v["hostPath"]) {
      const std::string path = v["hostPath"]["path"].as<std::string>();
      dir = absl::StartsWith(path, "/run/") ? path : root + "/host" + path;
    } else if (v["configMap"]) {
      if (v["configMap"]["name"].as<std::string>() !=
          configmap["metadata"]["name"].as<std::string>()) {
        return absl::NotFoundError("configMap " + v["configMap"]["name"].as<std::string>());
      }
      dir = root + "/configmap-" + name;
      fs::create_directories(dir);
      for (const auto& item : v["configMap"]["items"]) {
        const std::string key = item["key"].as<std::string>();
        // A path with directories (policies/strict.yaml): the kubelet creates them.
        fs::create_directories(fs::path(dir + "/" + item["path"].as<std::string>()).parent_path());
        SA_RETURN_IF_ERROR(WriteText(dir + "/" + item["path"].as<std::string>(),
                                     configmap["data"][key].as<std::string>()));
      }
    } else if (v["secret"] && v["secret"]["optional"] && v["secret"]["optional"].as<bool>()) {
      // No Secret exists in this test: the kubelet mounts an absent optional
      // secret as an empty directory.
      dir = root + "/secret-" + name;
      fs::create_directories(dir);
    } else {
      return absl::UnimplementedError("volume " + name +
                                      ": only hostPath, configMap and an absent optional secret");
    }
    fs::create_directories(dir);
    dirs[name] = dir;
  }
  return dirs;
}

// `podman run` flags for container `c` of pod `spec`: pid namespace,
// user, read-only root, no_new_privs, capabilities, seccomp, mounts,
// command. No network (the DaemonSet has no hostNetwork). This host has no
// AppArmor, so the manifest's AppArmor setting has nothing to map to.
absl::StatusOr<std::vector<std::string>> PodmanFlags(
    const YAML::Node& spec, const YAML::Node& c, const std::map<std::string, std::string>& vols) {
  std::vector<std::string> f = {"--network=none"};
  if (Flag(spec, "hostPID", true)) f.push_back("--pid=host");
  const YAML::Node sc = c["securityContext"];
  if (Flag(sc, "privileged", true)) f.push_back("--privileged");
  if (sc["runAsUser"]) f.push_back("--user=" + sc["runAsUser"].as<std::string>());
  if (Flag(sc, "readOnlyRootFilesystem", true)) f.push_back("--read-only");
  if (Flag(sc, "allowPrivilegeEscalation", false)) f.push_back("--security-opt=no-new-privileges");
  for (const auto& cap : sc["capabilities"]["drop"])
    f.push_back("--cap-drop=" + cap.as<std::string>());
  for (const auto& cap : sc["capabilities"]["add"])
    f.push_back("--cap-add=" + cap.as<std::string>());
  if (sc["seccompProfile"] && sc["seccompProfile"]["type"].as<std::string>() == "Unconfined") {
    f.push_back("--security-opt=seccomp=unconfined");
  }
  for (const auto& m : c["volumeMounts"]) {
    auto it = vols.find(m["name"].as<std::string>());
    if (it == vols.end()) return absl::NotFoundError("volume " + m["name"].as<std::string>());
    f.push_back(absl::StrCat("--volume=", it->second, ":", m["mountPath"].as<std::string>(),
                             Flag(m, "readOnly", true) ? ":ro" : ""));
  }
  if (c["command"])
    f.push_back("--entrypoint=" +
                nlohmann::json(c["command"].as<std::vector<std::string>>()).dump());
  return f;
}

// `c`'s env as a kubelet sets it: literal values, and status.podIP, which
// is 127.0.0.1 here (the pod runs with --network=none: loopback only).
absl::StatusOr<std::map<std::string, std::string>> KubeEnv(const YAML::Node& c) {
  std::map<std::string, std::string> env;
  for (const auto& e : c["env"]) {
    const std::string name = e["name"].as<std::string>();
    if (e["value"]) {
      env[name] = e["value"].as<std::string>();
    } else if (e["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>("") == "status.podIP") {
      env[name] = "127.0.0.1";
    } else {
      return absl::UnimplementedError("env " + name + ": only value and status.podIP");
    }
  }
  return env;
}

// podman run IMAGE with `c`'s flags, env and args; $(VAR) in args expands
// from the env as the kubelet expands it.
absl::StatusOr<std::vector<std::string>> PodmanRunArgs(
    const YAML::Node& spec, const YAML::Node& c, const std::map<std::string, std::string>& vols,
    const std::vector<std::string>& head, const std::string& image) {
  SA_ASSIGN_OR_RETURN(std::vector<std::string> flags, PodmanFlags(spec, c, vols));
  SA_ASSIGN_OR_RETURN(auto env, KubeEnv(c));
  std::vector<std::string> args = head;
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<std::pair<std::string, std::string>> refs;
  for (const auto& [k, v] : env) {
    args.push_back("--env=" + k + "=" + v);
    refs.emplace_back("$(" + k + ")", v);
  }
  args.push_back(image);
  if (c["args"]) {
    for (const auto& a : c["args"]) args.push_back(absl::StrReplaceAll(a.as<std::string>(), refs));
  }
  return args;
}

// The agent image from deploy/image/build.sh, in podman's storage.
absl::Status LoadAgentImage(const std::string& name) {
  const std::string layout = g->W("agent-oci");
  SA_RETURN_IF_ERROR(
      Must({"bash", Runfile("deploy/image/build.sh"), layout, AgentBinaryPath(),
            Runfile("agent/ctl/seccomp-agentctl"), Runfile("deploy/policy/default-policy.yaml")},
           absl::Seconds(300))
          .status());
  // podman names the image after the layout's path, which must be lowercase:
  // the temp dir's is not, a link in the test's private /run is.
  const std::string link = "/run/sa-e2e-agent-oci";
  fs::remove(link);
  fs::create_directory_symlink(layout, link);
  SA_ASSIGN_OR_RETURN(std::string out, g->podman->Must({"pull", "-q", "oci:" + link + ":latest"}));
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipWhitespace());
  if (lines.empty()) return absl::InternalError("podman pull printed no image id");
  return g->podman->Must({"tag", lines.back(), name}).status();
}

// Polls `podman logs NAME` until it contains `needle`.
std::string WaitForLogs(const std::string& name, const std::string& needle) {
  std::string text;
  for (absl::Time end = absl::Now() + absl::Seconds(60); absl::Now() < end;) {
    ProcessResult r = g->podman->Run({"logs", name}, absl::Seconds(30));
    text = r.out + r.err;
    if (absl::StrContains(text, needle)) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return text;
}

class KubeTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (g->podman != nullptr) g->podman->RemoveAllContainers();
  }
};

// Starts the DaemonSet's init container (installs the ConfigMap's profile)
// and its agent container from the agent image; returns the profile root.
absl::StatusOr<std::string> StartDaemonSet(const YAML::Node& configmap) {
  const YAML::Node ds = LoadManifest("daemonset.yaml");
  const YAML::Node spec = ds["spec"]["template"]["spec"];
  SA_ASSIGN_OR_RETURN(auto vols, KubeVolumes(spec, configmap, g->W("kube")));
  SA_RETURN_IF_ERROR(LoadAgentImage("localhost/seccomp-agent:e2e"));
  const YAML::Node init = spec["initContainers"][0];
  SA_ASSIGN_OR_RETURN(auto init_args, PodmanRunArgs(spec, init, vols, {"run", "--rm"},
                                                    init["image"].as<std::string>()));
  SA_RETURN_IF_ERROR(g->podman->Must(init_args).status());
  const YAML::Node agent = spec["containers"][0];
  SA_ASSIGN_OR_RETURN(auto agent_args,
                      PodmanRunArgs(spec, agent, vols, {"run", "-d", "--name", "sa-daemonset"},
                                    "localhost/seccomp-agent:e2e"));
  SA_RETURN_IF_ERROR(g->podman->Must(agent_args).status());
  for (const char* s : {"/agent.sock", "/admin.sock"}) {
    if (!WaitForSocket(std::string(kNodeSocketDir) + s, absl::Seconds(60))) {
      return absl::DeadlineExceededError(
          absl::StrCat("the DaemonSet's agent did not create ", s, ": ",
                       g->podman->Run({"logs", "sa-daemonset"}).Describe()));
    }
  }
  return g->W("kube/host/var/lib/kubelet/seccomp");
}

absl::StatusOr<nlohmann::json> AgentctlList() {
  SA_ASSIGN_OR_RETURN(std::string out,
                      Must({Runfile("agent/ctl/seccomp-agentctl"),
                            absl::StrCat("--socket=", kNodeSocketDir, "/admin.sock"),
                            "--timeout=10s", "--json", "list"}));
  nlohmann::json j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InternalError("list: not JSON: " + out);
  return j;
}

TEST_F(KubeTest, DaemonSetAgentServesExamplePodUnderKubePlay) {
  REQUIRE_ENV();
  const YAML::Node configmap = LoadManifest("configmap.yaml");
  auto profile_root = StartDaemonSet(configmap);
  ASSERT_TRUE(profile_root.ok()) << profile_root.status();
  // The init container installed the ConfigMap's profile where a kubelet looks.
  const std::string installed = *profile_root + "/seccomp-agent/notify-mkdir.json";
  const nlohmann::json shipped =
      nlohmann::json::parse(configmap["data"]["notify-mkdir.json"].as<std::string>());
  ASSERT_EQ(nlohmann::json::parse(ReadAll(installed), nullptr, false), shipped) << installed;

  // podman 4.3.1 ignores securityContext.seccompProfile: the pod as written
  // runs with podman's default profile, no listener (the limitation README
  // states; this fails once podman honours the field).
  const std::string pod_yaml = Runfile("deploy/kubernetes/example-pod.yaml");
  ASSERT_TRUE(g->podman
                  ->Must({"kube", "play", "--network=none", "--seccomp-profile-root", *profile_root,
                          pod_yaml})
                  .ok());
  const std::string demo = "seccomp-agent-demo-demo";
  auto plain_id = g->podman->Id(demo);
  ASSERT_TRUE(plain_id.ok()) << plain_id.status();
  auto plain = g->podman->OciConfig(*plain_id);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE((*plain)["linux"]["seccomp"].contains("listenerPath"));
  EXPECT_THAT(WaitForLogs(demo, "allowed"), HasSubstr("allowed"));
  g->podman->Run({"pod", "rm", "--force", "--time", "0", "seccomp-agent-demo"});

  // The annotation form, which 4.3.1 reads; it takes a file name directly
  // under --seccomp-profile-root, so the root is the profile's directory.
  YAML::Node pod = YAML::LoadFile(pod_yaml);
  pod["metadata"]["annotations"]["seccomp.security.alpha.kubernetes.io/pod"] =
      "localhost/notify-mkdir.json";
  const std::string annotated = g->W("example-pod-podman.yaml");
  ASSERT_TRUE(WriteText(annotated, YAML::Dump(pod)).ok());
  ASSERT_TRUE(g->podman
                  ->Must({"kube", "play", "--network=none", "--seccomp-profile-root",
                          *profile_root + "/seccomp-agent", annotated})
                  .ok());
  const std::string logs = WaitForLogs(demo, "Operation not permitted");
  EXPECT_THAT(logs, HasSubstr("allowed"));
  EXPECT_THAT(logs,
              HasSubstr("mkdir: can't create directory '/forbidden/x': Operation not permitted"));
  auto id = g->podman->Id(demo);
  ASSERT_TRUE(id.ok()) << id.status();
  auto config = g->podman->OciConfig(*id);
  ASSERT_TRUE(config.ok()) << config.status();
  const nlohmann::json& sec = (*config)["linux"]["seccomp"];
  EXPECT_EQ(sec.value("listenerPath", ""), shipped["listenerPath"]);
  EXPECT_EQ(sec.value("listenerMetadata", ""), shipped["listenerMetadata"]);
  // What podman sets of the Kubernetes identity: none of the keys the agent
  // reads (CRI-O's io.kubernetes.pod.* / containerd's io.kubernetes.cri.*).
  const nlohmann::json& ann = (*config)["annotations"];
  for (const char* k : {"io.kubernetes.pod.namespace", "io.kubernetes.pod.name",
                        "io.kubernetes.container.name", "io.kubernetes.cri.sandbox-namespace",
                        "io.kubernetes.cri.sandbox-name", "io.kubernetes.cri.container-name"}) {
    EXPECT_FALSE(ann.contains(k)) << "podman now sets " << k << ": update README";
  }
  EXPECT_TRUE(ann.contains("io.kubernetes.cri-o.SandboxID")) << ann.dump();

  // The DaemonSet's agent, asked through the mounted admin socket.
  auto list = AgentctlList();
  ASSERT_TRUE(list.ok()) << list.status();
  nlohmann::json entry;
  for (const auto& c : (*list)["containers"]) {
    if (c.value("id", "") == *id) entry = c;
  }
  ASSERT_FALSE(entry.is_null()) << list->dump(1);
  EXPECT_EQ(entry["listener_metadata"], shipped["listenerMetadata"]);
  EXPECT_EQ(entry["runtime"], "crun");
  EXPECT_GE(std::stoll(entry["counters"]["denied"].get<std::string>()), 1) << entry.dump();
  EXPECT_GE(std::stoll(entry["counters"]["allowed"].get<std::string>()), 1) << entry.dump();
  EXPECT_EQ(entry.value("pod_namespace", "?"), "") << entry.dump();
  EXPECT_EQ(entry.value("pod_name", "?"), "");
  EXPECT_EQ(entry.value("container_name", "?"), "");
}

// ---- containerd ----

TEST(Containerd, CtrRunHandsListenerToAgent) {
  REQUIRE_ENV();
  const std::string archive = g->W("busybox-oci.tar");
  ASSERT_TRUE(BuildOciArchive(g->rootfs, g->W("oci"), archive).ok());
  fs::create_directories(g->W("containerd"));
  auto containerd = Containerd::Start(g->W("containerd"));
  ASSERT_TRUE(containerd.ok()) << containerd.status();
  auto imported = Must(
      (*containerd)->Ctr({"images", "import", "--base-name", "localhost/sa-busybox", archive}));
  ASSERT_TRUE(imported.ok()) << imported.status();
  const std::string profile = g->W("ctr-profile.json");
  ASSERT_TRUE(WriteText(profile, ProfileJson(g->agent->socket_path(), "tenant-a")).ok());
  for (const std::string runtime : {"runc", "crun"}) {
    SCOPED_TRACE(runtime);
    const std::string id = absl::StrCat("sa-ctr-", runtime, "-", getpid());
    std::vector<std::string> args = {"run", "--rm", "--seccomp", "--seccomp-profile", profile};
    if (runtime == "crun") args.push_back("--runc-binary=/usr/bin/crun");
    args.insert(args.end(), {"localhost/sa-busybox:latest", id, "sh", "-c", kScript});
    ProcessResult r = RunProcess((*containerd)->Ctr(args), absl::Seconds(120));
    EXPECT_EQ(r.exit.exit_code, 0) << r.Describe() << ReadAll((*containerd)->log_path());
    ExpectAgentOutcome(r.out + r.err, "Operation not permitted");
    ExpectRegistered(id, runtime);
    ExpectDecisions(id, "profile-forbidden", "EPERM");
  }
}

// ---- rootless podman ----

constexpr uid_t kRootlessUid = 65534;  // nobody: no /etc/subuid range, one uid mapped

// A process run as kRootlessUid with its own HOME and XDG_RUNTIME_DIR.
std::vector<std::string> AsRootless(const std::string& dir, std::vector<std::string> argv) {
  std::vector<std::string> v = {"setpriv",
                                absl::StrCat("--reuid=", kRootlessUid),
                                absl::StrCat("--regid=", kRootlessUid),
                                "--clear-groups",
                                "env",
                                "--chdir=" + dir,
                                "USER=nobody",
                                "LOGNAME=nobody",
                                "HOME=" + dir + "/home",
                                "XDG_RUNTIME_DIR=" + dir + "/xdg",
                                "CONTAINERS_CONF=" + dir + "/containers.conf"};
  v.insert(v.end(), argv.begin(), argv.end());
  return v;
}

std::vector<std::string> RootlessPodman(const std::string& dir,
                                        const std::vector<std::string>& args) {
  std::vector<std::string> v = {"podman",
                                "--root=" + dir + "/home/storage",
                                "--runroot=" + dir + "/xdg/run",
                                "--tmpdir=" + dir + "/xdg/tmp",
                                "--storage-driver=vfs",
                                "--cgroup-manager=cgroupfs",
                                "--events-backend=file"};
  v.insert(v.end(), args.begin(), args.end());
  return AsRootless(dir, v);
}

// A temp dir the rootless user can use: agent binary, image tar, policy.
absl::StatusOr<TempDir> RootlessDir() {
  SA_ASSIGN_OR_RETURN(TempDir dir, TempDir::Make("sa-rootless"));
  const std::string d = dir.path();
  for (const char* sub : {"/home", "/xdg", "/agent"}) {
    if (mkdir((d + sub).c_str(), 0700) != 0) return ErrnoStatus(errno, "mkdir " + d + sub);
    if (chown((d + sub).c_str(), kRootlessUid, kRootlessUid) != 0) {
      return ErrnoStatus(errno, "chown " + d + sub);
    }
  }
  if (chmod(d.c_str(), 0755) != 0) return ErrnoStatus(errno, "chmod " + d);
  fs::copy_file(AgentBinaryPath(), d + "/seccomp-agent");
  fs::copy_file(g->rootfs_tar, d + "/busybox.tar");
  fs::permissions(d + "/seccomp-agent",
                  fs::perms::all & ~fs::perms::group_write & ~fs::perms::others_write);
  fs::permissions(d + "/busybox.tar", fs::perms::owner_read | fs::perms::owner_write |
                                          fs::perms::group_read | fs::perms::others_read);
  SA_RETURN_IF_ERROR(WriteText(d + "/policy.yaml", kAgentPolicy));
  SA_RETURN_IF_ERROR(WriteText(d + "/containers.conf", R"([containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
)"));
  SA_RETURN_IF_ERROR(
      WriteText(d + "/profile.json", ProfileJson(d + "/agent/agent.sock", "tenant-a")));
  return dir;
}

class RootlessTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (!dir_) return;
    RunProcess(RootlessPodman(dir_->path(), {"rm", "--all", "--force", "--time", "0"}),
               absl::Seconds(60));
    RunProcess(RootlessPodman(dir_->path(), {"rmi", "--all", "--force"}), absl::Seconds(60));
    // Rootless podman keeps a pause process holding its user namespace.
    long pause = -1;
    const std::string pid = ReadAll(dir_->path() + "/xdg/libpod/tmp/pause.pid");
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(pid), &pause) && pause > 1) {
      kill(static_cast<pid_t>(pause), SIGKILL);
    }
    agent_.reset();
  }
  std::optional<TempDir> dir_;
  std::unique_ptr<Subprocess> agent_;
};

// Rootless runtimes hand the listener to an agent running as the same
// user: it may read its own user's tasks (process_vm_readv) without any
// capability. (An agent running as root keeps its socket 0600 root, which a
// rootless runtime cannot connect to.)
TEST_F(RootlessTest, ListenerReachesAnAgentOfTheSameUser) {
  REQUIRE_ENV();
  auto dir = RootlessDir();
  ASSERT_TRUE(dir.ok()) << dir.status();
  dir_.emplace(std::move(*dir));
  const std::string d = dir_->path();
  auto agent = Subprocess::Start(AsRootless(
      d, {d + "/seccomp-agent", "--socket=" + d + "/agent/agent.sock",
          "--policy=" + d + "/policy.yaml", "--decision_log=" + d + "/agent/decisions.jsonl",
          "--holder_socket=none", absl::StrCat("--allowed_uids=", kRootlessUid),
          absl::StrCat("--admin_uids=", kRootlessUid)}));
  ASSERT_TRUE(agent.ok()) << agent.status();
  agent_ = std::move(*agent);
  ASSERT_TRUE(agent_->WaitForStderr("listening on", absl::Seconds(30))) << agent_->StderrText();
  auto imported =
      Must(RootlessPodman(d, {"import", "--change", "ENV=PATH=/bin", d + "/busybox.tar", kImage}));
  ASSERT_TRUE(imported.ok()) << imported.status();
  for (const std::string runtime : {"crun", "runc"}) {
    SCOPED_TRACE(runtime);
    ProcessResult r = RunProcess(
        RootlessPodman(d, {"run", "--rm", "--network=none", "--runtime", runtime, "--security-opt",
                           "seccomp=" + d + "/profile.json", kImage, "sh", "-c",
                           absl::StrCat(kScript, "; cd /etc && cat motd; echo rel_rc=$?")}),
        absl::Seconds(120));
    const std::string out = r.out + r.err;
    EXPECT_THAT(out, HasSubstr("'/forbidden/x': Operation not permitted")) << out;
    EXPECT_EQ(Field(out, "deny_rc"), 1) << out;
    EXPECT_EQ(Field(out, "spoof_rc"), 0) << out;
    EXPECT_THAT(out, HasSubstr("fake_absent"));
    EXPECT_THAT(out, HasSubstr("allow_ok"));
    // Both opens of /etc/motd (absolute, and relative to the cwd /etc) are
    // redirected (see below).
    const std::vector<absl::string_view> around = absl::StrSplit(out, "redirected-by-agent");
    EXPECT_EQ(around.size(), 3u) << out;
    EXPECT_EQ(Field(out, "rel_rc"), 0) << out;
    EXPECT_TRUE(
        agent_->WaitForStderrCount("runtime " + runtime + ", peer pid", 1, absl::Seconds(10)))
        << agent_->StderrText();
  }
  // An agent running as root: its socket directory and socket are root's.
  const std::string root_profile = d + "/root-agent-profile.json";
  ASSERT_TRUE(WriteText(root_profile, ProfileJson(g->agent->socket_path(), "tenant-a")).ok());
  ProcessResult r = RunProcess(RootlessPodman(d, {"run", "--rm", "--network=none", "--security-opt",
                                                  "seccomp=" + root_profile, kImage, "true"}),
                               absl::Seconds(120));
  EXPECT_NE(r.exit.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("Permission denied")) << r.Describe();
  const std::string log = ReadAll(d + "/agent/decisions.jsonl");
  EXPECT_THAT(log, HasSubstr("\"rule\":\"profile-forbidden\""));
  EXPECT_THAT(log, HasSubstr("\"rule\":\"fake-success\""));
  // Without capabilities the agent serves a redirect whose target open
  // creates nothing: the target is an absolute path, opened with
  // openat2(RESOLVE_IN_ROOT) from the task's root, which the task's own user
  // may open; no chroot (CAP_SYS_CHROOT) is needed, whatever path the task
  // passed.
  EXPECT_THAT(log, HasSubstr("\"result\":\"fd 3\",\"rule\":\"motd-redirect\""));
  EXPECT_THAT(log, Not(HasSubstr("\"result\":\"EPERM\",\"rule\":\"motd-redirect\"")));
}

}  // namespace
}  // namespace seccomp_agent::integration

int main(int argc, char** argv) {
  using namespace seccomp_agent::integration;
  // Before gtest or anything else starts a thread.
  g_namespace_status = new absl::Status(EnterPrivateMountNamespace());
  g = new Shared;
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new EnginesEnvironment);
  return RUN_ALL_TESTS();
}
