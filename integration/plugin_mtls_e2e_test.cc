// A plugin over the network, end to end: the real agent binary and the real
// C++ example plugin (redirect_by_label, --tls_* flags as in
// deploy/kubernetes/plugin-mtls.yaml) talk over TCP on 127.0.0.1 with a CA
// and certificates this test makes with openssl; runc containers make the
// calls. mTLS serves a decision; a server whose certificate another CA
// signed is refused and the call fails closed with the plugin's errno; a
// client certificate rotated in place is picked up without restarting the
// agent; plaintext TCP is refused unless the policy says insecure: true.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
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

using plugin::testing::TestPki;
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

// Writes the redirected file, puts the original in place and reads it: a
// served decision shows "from-plugin", a refused plugin EACCES.
constexpr char kReadScript[] =
    "mkdir -p /srv && echo from-plugin > /srv/app.conf && echo original > /etc/app.tmp && "
    "mv /etc/app.tmp /etc/app.conf && cat /etc/app.conf";

class PluginMtlsE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "needs root (runc containers)";
    auto pki = TestPki::Make();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::make_unique<TestPki>(*std::move(pki));
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
  void TearDown() override { StopPlugin(); }

  std::string P(const std::string& file) const { return pki_->P(file); }

  // The example plugin on address_; `tls` are its --tls_* flags.
  void StartPlugin(const std::vector<std::string>& tls) {
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
    ASSERT_TRUE(plugin_->WaitForStderr("serving on", absl::Seconds(15)))
        << plugin_->StderrText();
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
    address: ")", address_, R"("
    timeout_ms: 3000
    on_error: deny
    error_errno: EACCES
)", plugin_settings, R"(
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

  void StartAgent(const std::string& policy) {
    AgentOptions o;
    o.policy_yaml = policy;
    auto a = Agent::Start(o);
    ASSERT_TRUE(a.ok()) << a.status();
    agent_ = *std::move(a);
  }

  // A labelled runc container running `script`.
  ProcessResult Run(const std::string& name, const std::string& script,
                    absl::Duration timeout = absl::Seconds(60)) {
    id_ = UniqueContainerId(absl::StrCat("e2e-mtls-", name));
    ContainerConfig cfg;
    cfg.args = {"sh", "-c", script};
    cfg.seccomp = SeccompConfig{agent_->socket_path(), std::nullopt, {"openat", "open"}};
    cfg.annotations = {{"example.com/redirect", "yes"}};
    auto c = Container::Create(Runtime::kRunc, id_, cfg);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return ProcessResult{};
    container_ = *std::move(c);
    return container_->Run(timeout);
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

  std::unique_ptr<TestPki> pki_;
  std::string address_, id_;
  std::unique_ptr<Subprocess> plugin_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<Container> container_;
};

TEST_F(PluginMtlsE2ETest, MutualTlsServesTheDecision) {
  StartPlugin(ServerTls("server", "ca"));
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
  StartPlugin(ServerTls("server-other", "ca"));
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
  StartPlugin(ServerTls("server", "ca"));
  StartAgent(Policy(MutualTls()));
  ProcessResult first = Run("before", kReadScript);
  ASSERT_THAT(first.out, HasSubstr("from-plugin")) << first.Describe() << agent_->Stderr();
  const pid_t agent_pid = agent_->pid();

  StopPlugin();
  fs::copy_file(P("client-b.key"), P("tls.key.new"));
  fs::copy_file(P("client-b.pem"), P("tls.crt.new"));
  fs::rename(P("tls.key.new"), P("tls.key"));
  fs::rename(P("tls.crt.new"), P("tls.crt"));
  StartPlugin(ServerTls("server", "ca2"));  // accepts client-b only
  // Fails closed until the agent presents the new certificate.
  const std::string retry =
      "mkdir -p /srv && echo from-plugin > /srv/app.conf && echo original > /etc/app.tmp && "
      "mv /etc/app.tmp /etc/app.conf && "
      "for i in $(seq 90); do if cat /etc/app.conf 2>/dev/null | grep -q from-plugin; then "
      "echo rotated-ok; exit 0; fi; sleep 1; done; exit 1";
  ProcessResult after = Run("after", retry, absl::Seconds(150));
  EXPECT_EQ(after.exit.exit_code, 0) << after.Describe() << agent_->Stderr();
  EXPECT_THAT(after.out, HasSubstr("rotated-ok"));
  EXPECT_FALSE(agent_->exited());
  EXPECT_EQ(agent_->pid(), agent_pid);
}

TEST_F(PluginMtlsE2ETest, PlaintextTcpIsRefusedUnlessInsecure) {
  StartPlugin({});  // plaintext
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
