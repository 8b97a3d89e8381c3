// gRPC policy plugins end to end: real runc containers whose syscalls the
// real agent hands to a real plugin process: the C++ redirect-by-label
// example (a labelled container's open is redirected, an unlabelled one's is
// not) and the Python audit example (a denied path fails with its errno and
// the plugin logs what it allowed). And fail-closed: a plugin that is not
// there leaves the call denied by on_error within its timeout.
//
// A plugin over the network (PluginMtlsE2ETest): the agent and the C++
// example plugin (--tls_* flags as in deploy/kubernetes/plugin-mtls.yaml)
// over TCP on 127.0.0.1 with a CA and certificates made with openssl. mTLS
// serves a decision; a server whose certificate another CA signed is
// refused and the call fails closed with the plugin's errno; a client
// certificate rotated in place is picked up without restarting the agent;
// plaintext TCP is refused unless the policy says insecure: true.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/plugin/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration/harness/agent_process.h"
#include "integration/harness/container.h"
#include "integration/harness/subprocess.h"
#include "integration/harness/test_util.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

class PluginE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root (containers)";
    auto d = TempDir::Make("sa-plug");
    ASSERT_TRUE(d.ok()) << d.status();
    dir_ = std::make_unique<TempDir>(*std::move(d));
  }

  void StartPlugin(std::vector<std::string> argv, const std::string& sock) {
    auto p = Subprocess::Start(argv);
    ASSERT_TRUE(p.ok()) << p.status();
    plugin_ = *std::move(p);
    ASSERT_TRUE(WaitForSocket(sock, absl::Seconds(15))) << "plugin did not listen on " << sock;
  }

  void StartAgent(const std::string& policy) {
    AgentOptions o;
    o.policy_yaml = policy;
    auto a = Agent::Start(o);
    ASSERT_TRUE(a.ok()) << a.status();
    agent_ = *std::move(a);
  }

  ProcessResult RunContainer(const std::string& name, const std::string& script,
                             std::map<std::string, std::string> annotations = {}) {
    id_ = UniqueContainerId(absl::StrCat("e2e-plug-", name));
    ContainerConfig cfg;
    cfg.args = {"sh", "-c", script};
    cfg.seccomp = SeccompConfig{agent_->socket_path(), std::nullopt, {"openat", "open"}};
    cfg.annotations = std::move(annotations);
    auto c = Container::Create(Runtime::kRunc, id_, cfg);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return ProcessResult{};
    container_ = *std::move(c);
    return container_->Run(absl::Seconds(60));
  }

  // Every open goes to the plugin (no path filter in the agent's rule).
  static std::string ResolvedPathPolicy(const std::string& sock) {
    return absl::StrCat(R"(
version: 1
default_action: {allow: {}}
plugins:
  - {name: audit, address: "unix://)",
                        sock, R"(", timeout_ms: 3000, on_error: deny}
rules:
  - name: ask-audit
    match: {syscalls: [openat, open]}
    action: {plugin: audit}
)");
  }

  // Like RunContainer, with agent/testing:openat_probe as /bin/openat_probe.
  ProcessResult RunWithProbe(const std::string& name, const std::string& script) {
    id_ = UniqueContainerId(absl::StrCat("e2e-plug-", name));
    ContainerConfig cfg;
    cfg.args = {"sh", "-c", script};
    cfg.seccomp = SeccompConfig{agent_->socket_path(), std::nullopt, {"openat", "open"}};
    auto c = Container::Create(Runtime::kRunc, id_, cfg);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return ProcessResult{};
    container_ = *std::move(c);
    std::error_code ec;
    fs::copy_file(Runfile("agent/testing/openat_probe_static"),
                  container_->rootfs() + "/bin/openat_probe", fs::copy_options::overwrite_existing,
                  ec);
    EXPECT_FALSE(ec) << ec.message();
    return container_->Run(absl::Seconds(60));
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Subprocess> plugin_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<Container> container_;
  std::string id_;
};

TEST_F(PluginE2ETest, CppPluginRedirectsLabelledContainersOnly) {
  const std::string sock = dir_->path() + "/label.sock";
  StartPlugin({Runfile("agent/plugin/examples/redirect_by_label/redirect_by_label"),
               "--listen=unix://" + sock, "--label=example.com/redirect=yes",
               "--map=/etc/app.conf=/srv/app.conf"},
              sock);
  StartAgent(absl::StrCat(R"(
version: 1
default_action: {allow: {}}
redirect_roots: [/srv]
plugins:
  - {name: label, address: "unix://)",
                          sock, R"(", timeout_ms: 2000, on_error: deny}
rules:
  - name: ask-label
    match: {syscalls: [openat, open], args: {path: "/etc/app.conf"}}
    action: {plugin: label}
)"));
  const std::string script =
      "mkdir -p /srv && echo from-plugin > /srv/app.conf && echo original > /etc/app.tmp && "
      "mv /etc/app.tmp /etc/app.conf && "
      "cat /etc/app.conf";
  ProcessResult labelled = RunContainer("label-yes", script, {{"example.com/redirect", "yes"}});
  EXPECT_EQ(labelled.exit.exit_code, 0) << labelled.Describe() << agent_->Stderr();
  EXPECT_THAT(labelled.out, HasSubstr("from-plugin"));
  EXPECT_THAT(labelled.out, Not(HasSubstr("original")));
  bool seen = agent_->WaitForDecisions(
      id_,
      [](const std::vector<nlohmann::json>& ds) {
        for (const auto& d : ds) {
          if (d.value("rule", "") == "ask-label" && d.value("action", "") == "redirect_open" &&
              d.value("backend", "").find("plugin:label") != std::string::npos) {
            return true;
          }
        }
        return false;
      },
      absl::Seconds(5));
  EXPECT_TRUE(seen) << "no plugin redirect in the decision log";

  ProcessResult other = RunContainer("label-no", script);
  EXPECT_EQ(other.exit.exit_code, 0) << other.Describe();
  EXPECT_THAT(other.out, HasSubstr("original"));
}

TEST_F(PluginE2ETest, PythonPluginDeniesByListAndLogsTheRest) {
  const std::string sock = dir_->path() + "/audit.sock";
  StartPlugin({Runfile("agent/plugin/examples/audit_py/audit_py"), "--listen=unix://" + sock,
               "--deny_paths=/etc/secret*", "--errno=EACCES"},
              sock);
  StartAgent(absl::StrCat(R"(
version: 1
default_action: {allow: {}}
plugins:
  - {name: audit, address: "unix://)",
                          sock, R"(", timeout_ms: 3000, on_error: deny, stream: true}
rules:
  - name: ask-audit
    match: {syscalls: [openat, open], args: {path: "/etc/**"}}
    action: {plugin: audit}
)"));
  ProcessResult r = RunContainer("audit",
                                 "echo x > /etc/secret.txt; cat /etc/secret.txt; echo rc=$?; "
                                 "cat /etc/hostname");
  EXPECT_THAT(r.out + r.err, HasSubstr("Permission denied"));
  EXPECT_THAT(r.out, HasSubstr("rc=1"));
  EXPECT_THAT(r.out, HasSubstr("e2e-host"));  // /etc/hostname allowed
  // The plugin logged its allow of /etc/hostname as a JSON line.
  auto line = plugin_->WaitForStdout("/etc/hostname", absl::Seconds(5));
  ASSERT_TRUE(line.has_value()) << "plugin output lacks /etc/hostname";
  auto j = nlohmann::json::parse(line->text, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << line->text;
  EXPECT_EQ(j.value("decision", ""), "allow");
}

// The plugin decides on Decoded.path.resolved: a relative path (cwd) and a
// path relative to a dirfd are denied by their resolved form, which the raw
// value ("x") would not match.
TEST_F(PluginE2ETest, PythonPluginDecidesOnTheResolvedPath) {
  const std::string sock = dir_->path() + "/resolved.sock";
  StartPlugin({Runfile("agent/plugin/examples/audit_py/audit_py"), "--listen=unix://" + sock,
               "--deny_paths=/secret/*", "--errno=EACCES"},
              sock);
  StartAgent(ResolvedPathPolicy(sock));
  ProcessResult r = RunWithProbe("resolved",
                                 "mkdir -p /secret /pub && echo data > /pub/f; "
                                 "cd /secret && cat x; echo rel-rc=$?; cd /; "
                                 "/bin/openat_probe /secret x; "
                                 "cat /pub/f");
  EXPECT_THAT(r.out + r.err, HasSubstr("cat: can't open 'x': Permission denied")) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("rel-rc=1"));
  EXPECT_THAT(r.out, HasSubstr("dirfd-open: Permission denied"));
  EXPECT_THAT(r.out, HasSubstr("data")) << "an unrelated path is allowed";
  // The plugin saw the raw "x" and decided on "/secret/x".
  auto line = plugin_->WaitForStdout(R"("raw_path": "x")", absl::Seconds(5));
  ASSERT_TRUE(line.has_value()) << "plugin output lacks the relative open";
  auto j = nlohmann::json::parse(line->text, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << line->text;
  EXPECT_EQ(j.value("path", ""), "/secret/x");
  EXPECT_EQ(j.value("decision", ""), "deny");
}

// A path through a symlink is decided by its target: the engine resolves
// paths as the kernel does in the task's root, and the plugin gets that.
TEST_F(PluginE2ETest, PythonPluginDecidesOnTheSymlinkTarget) {
  const std::string sock = dir_->path() + "/symlink.sock";
  StartPlugin({Runfile("agent/plugin/examples/audit_py/audit_py"), "--listen=unix://" + sock,
               "--deny_paths=/secret/*", "--errno=EACCES"},
              sock);
  StartAgent(ResolvedPathPolicy(sock));
  ProcessResult r = RunWithProbe("symlink",
                                 "mkdir -p /secret /pub && ln -s /secret /pub/link && "
                                 "cat /pub/link/x; echo sym-rc=$?");
  EXPECT_THAT(r.out + r.err, HasSubstr("Permission denied")) << r.Describe();
  EXPECT_THAT(r.out, HasSubstr("sym-rc=1"));
}

TEST_F(PluginE2ETest, MissingPluginFailsClosedWithinTimeout) {
  StartAgent(absl::StrCat(R"(
version: 1
default_action: {allow: {}}
plugins:
  - {name: gone, address: "unix://)",
                          dir_->path(),
                          R"(/nobody.sock", timeout_ms: 200, on_error: deny, error_errno: EACCES}
rules:
  - name: ask-gone
    match: {syscalls: [openat, open], args: {path: "/etc/hostname"}}
    action: {plugin: gone}
)"));
  ProcessResult r = RunContainer("gone", "cat /etc/hostname; echo rc=$?");
  EXPECT_THAT(r.out + r.err, HasSubstr("Permission denied"));
  EXPECT_THAT(r.out, HasSubstr("rc=1"));
  bool seen = agent_->WaitForDecisions(
      id_,
      [](const std::vector<nlohmann::json>& ds) {
        for (const auto& d : ds) {
          if (d.value("rule", "") == "ask-gone" && d.value("result", "") == "EACCES") {
            EXPECT_LT(d.value("latency_ns", int64_t{0}),
                      int64_t{210} * 1000 * 1000 + 10 * 1000 * 1000);
            return true;
          }
        }
        return false;
      },
      absl::Seconds(5));
  EXPECT_TRUE(seen) << agent_->Stderr();
}

// Writes the redirected file, puts the original in place and reads it: a
// served decision shows "from-plugin", a refused plugin EACCES.
constexpr char kReadScript[] =
    "mkdir -p /srv && echo from-plugin > /srv/app.conf && echo original > /etc/app.tmp && "
    "mv /etc/app.tmp /etc/app.conf && cat /etc/app.conf";

class PluginMtlsE2ETest : public PluginE2ETest {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "needs root (runc containers)";
    PluginE2ETest::SetUp();
    auto pki = plugin::testing::TestPki::Make();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::make_unique<plugin::testing::TestPki>(*std::move(pki));
    for (const char* ca : {"ca", "ca2", "other"}) ASSERT_TRUE(pki_->MakeCa(ca).ok());
    const char* kServer = "subjectAltName=DNS:plugin.test,IP:127.0.0.1";
    ASSERT_TRUE(pki_->MakeCert("server", "ca", kServer).ok());
    ASSERT_TRUE(pki_->MakeCert("server-other", "other", kServer).ok());
    ASSERT_TRUE(pki_->MakeCert("client-a", "ca", "extendedKeyUsage=clientAuth").ok());
    ASSERT_TRUE(pki_->MakeCert("client-b", "ca2", "extendedKeyUsage=clientAuth").ok());
    // The agent's client pair, as the DaemonSet mounts it (rotated in place).
    fs::copy_file(P("client-a.pem"), P("tls.crt"));
    fs::copy_file(P("client-a.key"), P("tls.key"));
    const int port = plugin::testing::FreeLoopbackPort();
    ASSERT_GT(port, 0);
    address_ = absl::StrCat("127.0.0.1:", port);
  }
  void TearDown() override { StopPlugin(); }  // before the base class's members go

  std::string P(const std::string& file) const { return pki_->P(file); }

  // The example plugin on address_; `tls` are its --tls_* flags.
  void StartTcpPlugin(const std::vector<std::string>& tls) {
    std::vector<std::string> argv = {
        Runfile("agent/plugin/examples/redirect_by_label/redirect_by_label"),
        "--listen=" + address_, "--label=example.com/redirect=yes",
        "--map=/etc/app.conf=/srv/app.conf",
        // Every call reaches the plugin (a cached answer would hide a
        // refused connection).
        "--cache_ttl_ms=0"};
    argv.insert(argv.end(), tls.begin(), tls.end());
    auto p = Subprocess::Start(argv);
    ASSERT_TRUE(p.ok()) << p.status();
    plugin_ = *std::move(p);
    ASSERT_TRUE(plugin_->WaitForStderr("serving on", absl::Seconds(15))) << plugin_->StderrText();
  }
  void StopPlugin() {
    if (plugin_ == nullptr) return;
    plugin_->Signal(SIGTERM);
    plugin_->Wait(absl::Seconds(10));
    plugin_.reset();
  }
  // The server pair `cert` (.pem/.key); mTLS when `client_ca` is set.
  std::vector<std::string> ServerTls(const std::string& cert, const std::string& client_ca) {
    std::vector<std::string> f = {"--tls_cert=" + P(cert + ".pem"), "--tls_key=" + P(cert + ".key"),
                                  "--tls_refresh_s=1"};
    if (!client_ca.empty()) f.push_back("--tls_client_ca=" + P(client_ca + ".pem"));
    return f;
  }

  // `plugin_settings`: the YAML of the plugin's transport (tls: or insecure:).
  std::string Policy(const std::string& plugin_settings) const {
    return absl::StrCat(R"(
version: 1
default_action: {allow: {}}
redirect_roots: [/srv]
plugins:
  - name: label
    address: ")",
                        address_, R"("
    timeout_ms: 3000
    on_error: deny
    error_errno: EACCES
)",
                        plugin_settings, R"(
rules:
  - name: ask-label
    match: {syscalls: [openat, open], args: {path: "/etc/app.conf"}}
    action: {plugin: label}
)");
  }
  std::string MutualTls() const {
    return absl::StrCat("    tls: {ca_file: ", P("ca.pem"), ", cert_file: ", P("tls.crt"),
                        ", key_file: ", P("tls.key"), ", server_name: plugin.test}");
  }

  // A labelled runc container running `script`.
  ProcessResult Run(const std::string& name, const std::string& script) {
    return RunContainer(absl::StrCat("mtls-", name), script, {{"example.com/redirect", "yes"}});
  }

  // Whether the decision log has `id_`'s ask-label decision with `result`.
  bool Decided(const std::string& action, const std::string& result) {
    return agent_->WaitForDecisions(
        id_,
        [&](const std::vector<nlohmann::json>& ds) {
          for (const auto& d : ds) {
            if (d.value("rule", "") == "ask-label" && d.value("action", "") == action &&
                d.value("result", "").find(result) != std::string::npos) {
              return true;
            }
          }
          return false;
        },
        absl::Seconds(10));
  }

  std::unique_ptr<plugin::testing::TestPki> pki_;
  std::string address_;
};

TEST_F(PluginMtlsE2ETest, MutualTlsServesTheDecision) {
  StartTcpPlugin(ServerTls("server", "ca"));
  StartAgent(Policy(MutualTls()));
  ProcessResult r = Run("ok", kReadScript);
  EXPECT_EQ(r.exit.exit_code, 0) << r.Describe() << agent_->Stderr();
  EXPECT_THAT(r.out, HasSubstr("from-plugin"));
  EXPECT_THAT(r.out, Not(HasSubstr("original")));
  EXPECT_TRUE(Decided("redirect_open", "")) << agent_->Stderr();
}

// The plugin's certificate is genuine but another CA signed it: the agent
// does not talk to it, and the call fails closed with error_errno.
TEST_F(PluginMtlsE2ETest, ServerOfAnotherCaIsRefusedFailClosed) {
  StartTcpPlugin(ServerTls("server-other", "ca"));
  StartAgent(Policy(MutualTls()));
  ProcessResult r = Run("wrong-ca", kReadScript);
  EXPECT_NE(r.exit.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.out + r.err, HasSubstr("Permission denied")) << r.Describe();
  EXPECT_THAT(r.out, Not(HasSubstr("from-plugin")));
  EXPECT_THAT(r.out, Not(HasSubstr("original")));
  EXPECT_TRUE(Decided("deny", "EACCES")) << agent_->Stderr();
  EXPECT_TRUE(agent_->WaitForLog("plugin label unavailable", absl::Seconds(10)).has_value())
      << "one line says the plugin is unavailable:\n"
      << agent_->Stderr();
}

// cert-manager renews the agent's pair in place. The plugin restarted to
// trust only the new pair's CA serves again once the agent presents it:
// the agent re-reads its files (every 10 s) without a restart.
TEST_F(PluginMtlsE2ETest, RotatedClientCertificateIsPickedUpWithoutARestart) {
  StartTcpPlugin(ServerTls("server", "ca"));
  StartAgent(Policy(MutualTls()));
  ProcessResult first = Run("before", kReadScript);
  ASSERT_THAT(first.out, HasSubstr("from-plugin")) << first.Describe() << agent_->Stderr();
  const pid_t agent_pid = agent_->pid();

  StopPlugin();
  fs::copy_file(P("client-b.key"), P("tls.key.new"));
  fs::copy_file(P("client-b.pem"), P("tls.crt.new"));
  fs::rename(P("tls.key.new"), P("tls.key"));
  fs::rename(P("tls.crt.new"), P("tls.crt"));
  StartTcpPlugin(ServerTls("server", "ca2"));  // accepts client-b only
  // Fails closed until the agent presents the new certificate.
  const std::string retry =
      "mkdir -p /srv && echo from-plugin > /srv/app.conf && echo original > /etc/app.tmp && "
      "mv /etc/app.tmp /etc/app.conf && "
      "for i in $(seq 45); do if cat /etc/app.conf 2>/dev/null | grep -q from-plugin; then "
      "echo rotated-ok; exit 0; fi; sleep 1; done; exit 1";
  ProcessResult after = Run("after", retry);
  EXPECT_EQ(after.exit.exit_code, 0) << after.Describe() << agent_->Stderr();
  EXPECT_THAT(after.out, HasSubstr("rotated-ok"));
  EXPECT_FALSE(agent_->exited());
  EXPECT_EQ(agent_->pid(), agent_pid);
}

TEST_F(PluginMtlsE2ETest, PlaintextTcpIsRefusedUnlessInsecure) {
  StartTcpPlugin({});  // plaintext
  AgentOptions o;
  o.policy_yaml = Policy("");
  o.ready_timeout = absl::Seconds(15);
  auto refused = Agent::Start(o);
  ASSERT_FALSE(refused.ok()) << "the agent started with a plaintext TCP plugin";
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("plaintext TCP"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("insecure: true"));

  StartAgent(Policy("    insecure: true"));
  ProcessResult r = Run("insecure", kReadScript);
  EXPECT_EQ(r.exit.exit_code, 0) << r.Describe() << agent_->Stderr();
  EXPECT_THAT(r.out, HasSubstr("from-plugin"));
}

}  // namespace
}  // namespace seccomp_agent::integration
