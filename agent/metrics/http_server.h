// The metrics endpoint: an HTTP server (cpp-httplib) serving
//   GET /metrics  the registry, text exposition format 0.0.4
//   GET /healthz  200 "ok" while `healthy()` is true, else 503
// on --metrics_address (host:port; "[::1]:9464" for IPv6; port 0 picks one).
#ifndef SECCOMP_AGENT_METRICS_HTTP_SERVER_H_
#define SECCOMP_AGENT_METRICS_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/metrics/registry.h"

namespace httplib {
class Server;
}

namespace seccomp_agent::metrics {

class HttpServer {
 public:
  // Binds `address` and starts serving on a background thread. `registry`
  // must outlive the server. `healthy` may be empty (always healthy).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address,
                                                           const Registry* registry,
                                                           std::function<bool()> healthy);
  ~HttpServer();  // stops and joins

  // The bound port (useful with port 0).
  int port() const { return port_; }

 private:
  HttpServer();
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// Splits "host:port" / "[v6]:port" / ":port" (host "0.0.0.0").
absl::Status ParseHostPort(const std::string& address, std::string* host, int* port);

}  // namespace seccomp_agent::metrics

#endif  // SECCOMP_AGENT_METRICS_HTTP_SERVER_H_
