// redirect_by_label: an example seccomp-agent policy plugin (see README.md).
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "agent/plugin/examples/redirect_by_label/redirect_by_label.h"

ABSL_FLAG(std::string, listen, "unix:///run/seccomp-agent/redirect-by-label.sock",
          "gRPC address to serve on (unix:///path or host:port)");
ABSL_FLAG(std::string, label, "seccomp.example.com/redirect",
          "annotation KEY or KEY=VALUE that marks containers to redirect");
ABSL_FLAG(std::vector<std::string>, map, {},
          "comma-separated SRC=DST exact path mappings (absolute paths)");
ABSL_FLAG(std::vector<std::string>, prefix, {},
          "comma-separated SRC/=DST/ prefix mappings (directories, trailing /)");
ABSL_FLAG(uint32_t, cache_ttl_ms, 10000, "cache hint TTL sent with decisions (0: none)");
ABSL_FLAG(bool, others_no_opinion, false,
          "answer no_opinion (defer to the next rule) instead of allow for unlabelled containers");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM server certificate (chain) for TLS on a host:port address, with --tls_key");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: require client certificates it signs (mTLS); needs --tls_cert");
ABSL_FLAG(uint32_t, tls_refresh_s, 10,
          "seconds between re-reads of the TLS files (a rotated certificate is used by the next "
          "handshake, no restart)");

namespace {

bool ParseMap(const std::vector<std::string>& items, std::map<std::string, std::string>* out) {
  for (const std::string& item : items) {
    std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty() || kv[1].empty()) {
      std::fprintf(stderr, "bad mapping \"%s\" (want SRC=DST)\n", item.c_str());
      return false;
    }
    (*out)[kv[0]] = kv[1];
  }
  return true;
}

// Plaintext unless --tls_cert/--tls_key are given; then TLS with the files
// re-read every --tls_refresh_s (cert-manager renews them in place), and
// with --tls_client_ca, clients must present a certificate that CA signed.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const std::string& addr) {
  const std::string cert = absl::GetFlag(FLAGS_tls_cert), key = absl::GetFlag(FLAGS_tls_key);
  const std::string client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (cert.empty() != key.empty() || (cert.empty() && !client_ca.empty())) {
    std::fprintf(stderr, "--tls_cert and --tls_key go together; --tls_client_ca needs them\n");
    return nullptr;
  }
  if (cert.empty()) return grpc::InsecureServerCredentials();
  if (addr.rfind("unix:", 0) == 0) {
    std::fprintf(stderr, "TLS is for host:port addresses\n");
    return nullptr;
  }
  for (const std::string& f : {cert, key, client_ca}) {
    if (!f.empty() && access(f.c_str(), R_OK) != 0) {
      std::fprintf(stderr, "cannot read %s\n", f.c_str());
      return nullptr;
    }
  }
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      key, cert, client_ca, absl::GetFlag(FLAGS_tls_refresh_s));
  grpc::experimental::TlsServerCredentialsOptions o(provider);
  o.watch_identity_key_cert_pairs();
  if (client_ca.empty()) {
    o.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    o.watch_root_certs();
    o.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(o);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  seccomp_agent::examples::RedirectByLabelConfig cfg;
  const std::string label = absl::GetFlag(FLAGS_label);
  std::vector<std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
  cfg.label_key = kv[0];
  if (kv.size() == 2) cfg.label_value = kv[1];
  if (!ParseMap(absl::GetFlag(FLAGS_map), &cfg.exact) ||
      !ParseMap(absl::GetFlag(FLAGS_prefix), &cfg.prefix)) {
    return 2;
  }
  cfg.cache_ttl_ms = absl::GetFlag(FLAGS_cache_ttl_ms);
  cfg.others_no_opinion = absl::GetFlag(FLAGS_others_no_opinion);

  // SIGINT/SIGTERM end the server cleanly (sigwait below).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  seccomp_agent::examples::RedirectByLabelService service(cfg);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  const std::string addr = absl::GetFlag(FLAGS_listen);
  std::shared_ptr<grpc::ServerCredentials> creds = ServerCredentials(addr);
  if (creds == nullptr) return 2;
  builder.AddListeningPort(addr, creds);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "redirect_by_label: cannot listen on %s\n", addr.c_str());
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus("seccompagent.v1.PolicyPlugin", true);
  const char* tls = absl::GetFlag(FLAGS_tls_cert).empty()        ? "plaintext"
                    : absl::GetFlag(FLAGS_tls_client_ca).empty() ? "TLS"
                                                                 : "mTLS";
  std::fprintf(stderr,
               "redirect_by_label: serving on %s, %s (label %s, %zu exact, %zu prefix mappings)\n",
               addr.c_str(), tls, label.c_str(), cfg.exact.size(), cfg.prefix.size());
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "redirect_by_label: signal %d, shutting down\n", sig);
  server->GetHealthCheckService()->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}
