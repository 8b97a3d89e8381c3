#include "agent/metrics/http_server.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/metrics/exposition.h"
#include "httplib.h"

namespace seccomp_agent::metrics {

absl::Status ParseHostPort(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("\"", address, "\": want host:port"));
  }
  std::string h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) h = "0.0.0.0";
  int p = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &p) || p < 0 || p > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("\"", address, "\": bad port"));
  }
  *host = h;
  *port = p;
  return absl::OkStatus();
}

HttpServer::HttpServer() : server_(std::make_unique<httplib::Server>()) {}

HttpServer::~HttpServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address,
                                                              const Registry* registry,
                                                              std::function<bool()> healthy) {
  std::string host;
  int port = 0;
  if (absl::Status s = ParseHostPort(address, &host, &port); !s.ok()) return s;
  std::unique_ptr<HttpServer> srv(new HttpServer());
  srv->server_->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Render(), kContentType);
  });
  srv->server_->Get("/healthz", [healthy](const httplib::Request&, httplib::Response& res) {
    if (!healthy || healthy()) {
      res.set_content("ok\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content("not ready\n", "text/plain");
    }
  });
  if (port == 0) {
    port = srv->server_->bind_to_any_port(host);
    if (port < 0) return absl::UnavailableError(absl::StrCat("metrics: cannot bind ", address));
  } else if (!srv->server_->bind_to_port(host, port)) {
    return absl::UnavailableError(absl::StrCat("metrics: cannot bind ", address));
  }
  srv->port_ = port;
  httplib::Server* raw = srv->server_.get();
  srv->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  return srv;
}

}  // namespace seccomp_agent::metrics
