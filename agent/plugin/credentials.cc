#include "agent/plugin/credentials.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace seccomp_agent::plugin {

namespace v1 = ::seccompagent::v1;

namespace {

absl::Status Readable(const v1::PluginConfig& pc, const std::string& field,
                      const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("plugin \"", pc.name(), "\": tls.", field,
                                                   " must be an absolute path, got \"", path,
                                                   "\""));
  }
  std::ifstream f(path);
  char c;
  if (!f || !f.get(c)) {
    return absl::InvalidArgumentError(absl::StrCat("plugin \"", pc.name(), "\": tls.", field, " \"",
                                                   path, "\" is missing or empty"));
  }
  return absl::OkStatus();
}

absl::Status CheckTlsFiles(const v1::PluginConfig& pc) {
  const v1::PluginTls& t = pc.tls();
  if (t.cert_file().empty() != t.key_file().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plugin \"", pc.name(), "\": tls.cert_file and tls.key_file go together (mTLS)"));
  }
  if (absl::Status s = Readable(pc, "ca_file", t.ca_file()); !s.ok()) return s;
  if (t.cert_file().empty()) return absl::OkStatus();
  if (absl::Status s = Readable(pc, "cert_file", t.cert_file()); !s.ok()) return s;
  return Readable(pc, "key_file", t.key_file());
}

// The host of "host:port" / "[v6]:port".
std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

// The server certificate must name `expected` (a DNS SAN, exactly or by a
// one-label wildcard, or an IP SAN). gRPC's own check compared against the
// channel's target and ignored the server_name override here (grpc 1.51),
// so the check is ours, against the name the policy gives.
class ServerNameVerifier : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit ServerNameVerifier(std::string expected) : expected_(absl::AsciiStrToLower(expected)) {}
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override {
    *sync_status = Matches(*request)
                       ? grpc::Status::OK
                       : grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                      "the plugin's certificate does not name " + expected_);
    return true;
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  bool Matches(const grpc::experimental::TlsCustomVerificationCheckRequest& r) const {
    for (const grpc::string_ref& ip : r.ip_names()) {
      if (std::string(ip.data(), ip.size()) == expected_) return true;
    }
    for (const grpc::string_ref& d : r.dns_names()) {
      const std::string name = absl::AsciiStrToLower(std::string(d.data(), d.size()));
      if (name == expected_) return true;
      const size_t dot = expected_.find('.');
      if (absl::StartsWith(name, "*.") && dot != std::string::npos &&
          name.substr(1) == expected_.substr(dot)) {
        return true;
      }
    }
    return false;
  }
  const std::string expected_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> PluginCredentials(
    const v1::PluginConfig& pc, absl::Duration refresh, grpc::ChannelArguments* args) {
  const std::string who = absl::StrCat("plugin \"", pc.name(), "\": ");
  if (absl::StartsWith(pc.address(), "unix:")) {
    if (pc.has_tls()) {
      return absl::InvalidArgumentError(
          absl::StrCat(who,
                       "tls is for host:port addresses (a unix socket is protected by its "
                       "file mode)"));
    }
    return grpc::InsecureChannelCredentials();
  }
  if (!pc.has_tls()) {
    if (pc.insecure()) return grpc::InsecureChannelCredentials();
    return absl::InvalidArgumentError(
        absl::StrCat(who, "plaintext TCP to ", pc.address(),
                     " refused: set tls.ca_file (and tls.cert_file + tls.key_file for mTLS), or "
                     "insecure: true"));
  }
  if (pc.insecure()) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, "tls and insecure: true exclude each other"));
  }
  if (absl::Status s = CheckTlsFiles(pc); !s.ok()) return s;
  const v1::PluginTls& t = pc.tls();
  const unsigned refresh_s =
      static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(refresh)));
  auto provider = t.cert_file().empty()
                      ? std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                            t.ca_file(), refresh_s)
                      : std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                            t.key_file(), t.cert_file(), t.ca_file(), refresh_s);
  grpc::experimental::TlsChannelCredentialsOptions o;
  o.set_certificate_provider(provider);
  o.watch_root_certs();
  if (!t.cert_file().empty()) o.watch_identity_key_cert_pairs();
  o.set_verify_server_certs(true);  // the chain, against ca_file
  const std::string name = t.server_name().empty() ? HostOf(pc.address()) : t.server_name();
  o.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<ServerNameVerifier>(name));
  o.set_check_call_host(false);  // ServerNameVerifier checks the name
  if (!t.server_name().empty()) args->SetSslTargetNameOverride(t.server_name());
  auto creds = grpc::experimental::TlsCredentials(o);
  if (creds == nullptr) return absl::InternalError(absl::StrCat(who, "TLS credentials failed"));
  return creds;
}

}  // namespace seccomp_agent::plugin
