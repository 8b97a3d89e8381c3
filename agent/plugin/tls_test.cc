// Plugins over TCP: TLS and mTLS against real gRPC servers on 127.0.0.1,
// with a CA and certificates this test makes with openssl. Plaintext TCP is
// refused unless the policy says insecure: true; a server whose certificate
// another CA signed is refused (the call fails closed); a rotated client
// certificate is used by the next connection without a restart.
#include <grpcpp/security/server_credentials.h>

#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/plugin/dispatcher.h"
#include "agent/plugin/testing/fake_plugin.h"
#include "agent/plugin/testing/test_pki.h"
#include "agent/plugin/testing/test_util.h"
#include "gtest/gtest.h"

namespace seccomp_agent::plugin {
namespace {

using testing::Container;
using testing::DecideSync;
using testing::FakePlugin;
using testing::OpenatEvent;
using testing::Slurp;
using testing::TestPki;
using Kind = PluginResult::Kind;
namespace fs = std::filesystem;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Make();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::make_unique<TestPki>(*std::move(pki));
    for (const char* ca : {"ca1", "ca2", "other"}) ASSERT_TRUE(pki_->MakeCa(ca).ok());
    ASSERT_TRUE(
        pki_->MakeCert("server", "ca1", "subjectAltName=DNS:plugin.test,IP:127.0.0.1").ok());
    ASSERT_TRUE(pki_->MakeCert("client-a", "ca1", "extendedKeyUsage=clientAuth").ok());
    ASSERT_TRUE(pki_->MakeCert("client-b", "ca2", "extendedKeyUsage=clientAuth").ok());
    port_ = testing::FreeLoopbackPort();
    ASSERT_GT(port_, 0);
    address_ = absl::StrCat("127.0.0.1:", port_);
  }
  void TearDown() override { fake_.Stop(); }

  std::string P(const std::string& file) { return pki_->P(file); }

  // A server with the server certificate; it requires a client certificate
  // signed by `client_ca` (empty: none asked).
  void StartServer(const std::string& client_ca) {
    grpc::SslServerCredentialsOptions o(
        client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    if (!client_ca.empty()) o.pem_root_certs = Slurp(P(client_ca + ".pem"));
    o.pem_key_cert_pairs.push_back({Slurp(P("server.key")), Slurp(P("server.pem"))});
    ASSERT_TRUE(fake_.Start(address_, grpc::SslServerCredentials(o)).ok());
  }

  v1::PluginConfig Config() {
    v1::PluginConfig pc;
    pc.set_name("tls");
    pc.set_address(address_);
    pc.set_timeout_ms(2000);
    pc.set_on_error(v1::PluginConfig::DENY);
    pc.mutable_tls()->set_ca_file(P("ca1.pem"));
    // The name in the server's certificate (also checks the override).
    pc.mutable_tls()->set_server_name("plugin.test");
    return pc;
  }
  absl::StatusOr<std::unique_ptr<PluginDispatcher>> Make(const v1::PluginConfig& pc) {
    DispatcherOptions o;
    o.tls_refresh = absl::Seconds(1);
    o.initial_backoff = absl::Milliseconds(100);
    o.max_backoff = absl::Milliseconds(300);
    return PluginDispatcher::Create({pc}, o);
  }
  bool EventuallyDecides(PluginDispatcher& d, absl::Duration within) {
    const absl::Time end = absl::Now() + within;
    while (absl::Now() < end) {
      if (DecideSync(d, "tls", ev_).result.kind == Kind::kAction) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  std::unique_ptr<TestPki> pki_;
  std::string address_;
  int port_ = 0;
  FakePlugin fake_;
  ContainerInfo c_ = Container("c1");
  SyscallEvent ev_ = OpenatEvent(&c_, "/etc/passwd");
};

TEST_F(TlsTest, PlaintextTcpIsRefusedUnlessInsecure) {
  v1::PluginConfig pc = Config();
  pc.clear_tls();
  auto d = Make(pc);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("plaintext TCP to 127.0.0.1:"), std::string::npos)
      << d.status();
  EXPECT_NE(d.status().message().find("insecure: true"), std::string::npos) << d.status();
  pc.set_insecure(true);
  ASSERT_TRUE(fake_.Start(address_).ok());
  auto ok = Make(pc);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(EventuallyDecides(**ok, absl::Seconds(10)));
}

TEST_F(TlsTest, BadTlsSettingsFailAtCreate) {
  v1::PluginConfig pc = Config();
  pc.mutable_tls()->set_cert_file(P("client-a.pem"));  // without key_file
  EXPECT_FALSE(Make(pc).ok());
  pc = Config();
  pc.mutable_tls()->set_ca_file(P("nope.pem"));
  auto missing = Make(pc);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing or empty"), std::string::npos);
  pc = Config();
  pc.set_insecure(true);
  EXPECT_FALSE(Make(pc).ok()) << "tls and insecure together";
  pc = Config();
  pc.set_address("unix:///tmp/x.sock");
  EXPECT_FALSE(Make(pc).ok()) << "tls on a unix socket";
}

TEST_F(TlsTest, MutualTlsDecides) {
  StartServer("ca1");
  v1::PluginConfig pc = Config();
  pc.mutable_tls()->set_cert_file(P("client-a.pem"));
  pc.mutable_tls()->set_key_file(P("client-a.key"));
  auto d = Make(pc);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(EventuallyDecides(**d, absl::Seconds(10)));
  EXPECT_GE(fake_.requests(), 1);
}

TEST_F(TlsTest, ServerOfAnotherCaIsRefusedFailClosed) {
  StartServer("");
  v1::PluginConfig pc = Config();
  pc.mutable_tls()->set_ca_file(P("other.pem"));
  auto d = Make(pc);
  ASSERT_TRUE(d.ok()) << d.status();
  for (int i = 0; i < 3; ++i) {
    PluginResult r = DecideSync(**d, "tls", ev_).result;
    EXPECT_EQ(r.kind, Kind::kError);
    EXPECT_EQ(r.error_kind, ErrorKind::kUnavailable) << r.error;
    EXPECT_EQ(r.on_error, v1::PluginConfig::DENY);
  }
  EXPECT_EQ(fake_.requests(), 0) << "nothing reached a server we do not trust";
}

TEST_F(TlsTest, ServerCertificateForAnotherNameIsRefused) {
  StartServer("");
  v1::PluginConfig pc = Config();
  pc.mutable_tls()->set_server_name("other.test");
  auto d = Make(pc);
  ASSERT_TRUE(d.ok()) << d.status();
  PluginResult r = DecideSync(**d, "tls", ev_).result;
  EXPECT_EQ(r.kind, Kind::kError);
  EXPECT_EQ(fake_.requests(), 0);
}

TEST_F(TlsTest, ServerCertificateMatchedByIpWithoutAServerName) {
  StartServer("");
  v1::PluginConfig pc = Config();
  pc.mutable_tls()->clear_server_name();  // 127.0.0.1, an IP SAN
  auto d = Make(pc);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(EventuallyDecides(**d, absl::Seconds(10)));
}

TEST_F(TlsTest, MutualTlsServerRefusesAClientWithoutACertificate) {
  StartServer("ca1");
  auto d = Make(Config());  // no cert_file/key_file
  ASSERT_TRUE(d.ok()) << d.status();
  PluginResult r = DecideSync(**d, "tls", ev_).result;
  EXPECT_EQ(r.kind, Kind::kError);
  EXPECT_EQ(fake_.requests(), 0);
}

// cert-manager rotates the key pair in place (a new file renamed over the
// old one). The next connection presents the new certificate: here the
// restarted server trusts only the new certificate's CA, so calls decide
// again only if the rotated files were picked up.
TEST_F(TlsTest, RotatedClientCertificateIsPickedUpWithoutARestart) {
  fs::copy_file(P("client-a.pem"), P("tls.crt"));
  fs::copy_file(P("client-a.key"), P("tls.key"));
  StartServer("ca1");
  v1::PluginConfig pc = Config();
  pc.mutable_tls()->set_cert_file(P("tls.crt"));
  pc.mutable_tls()->set_key_file(P("tls.key"));
  auto d = Make(pc);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(EventuallyDecides(**d, absl::Seconds(10)));

  fake_.Stop();
  fs::copy_file(P("client-b.key"), P("tls.key.new"));
  fs::copy_file(P("client-b.pem"), P("tls.crt.new"));
  fs::rename(P("tls.key.new"), P("tls.key"));
  fs::rename(P("tls.crt.new"), P("tls.crt"));
  StartServer("ca2");  // accepts client-b only
  EXPECT_TRUE(EventuallyDecides(**d, absl::Seconds(20)))
      << "the rotated client certificate was not used";
}

}  // namespace
}  // namespace seccomp_agent::plugin
