// The metrics endpoint: a small HTTP/1.1 server for
//   GET /metrics  the registry, text exposition format 0.0.4
//   GET /healthz  200 "ok" while `healthy()` is true, else 503
// on --metrics_address (host:port; "[::1]:9464" for IPv6; port 0 picks one).
//
// Built to stay up for whoever can connect (any local user, or any pod that
// reaches the address): one thread and one epoll set serve every connection,
// so an idle connection costs an fd and a few bytes, never a thread.
//  - at most `max_connections` are open; a new one closes the oldest, so a
//    flood of idle connections cannot lock Prometheus or a probe out;
//  - each connection has `timeout` from accept to the end of its response
//    (the request must arrive and the response be taken within it);
//  - a request is at most `max_request_bytes` (GET has no body); responses
//    carry "Connection: close";
//  - unsent response bytes are capped at `max_pending_bytes` in all: a new
//    response beyond it closes the oldest connections with unsent bytes.
// cpp-httplib (used before) gave each connection a pool thread until it went
// idle for 5 s and queued the rest without limit: 3000 idle connections
// held ~3000 fds and made /healthz time out.
#ifndef SECCOMP_AGENT_METRICS_HTTP_SERVER_H_
#define SECCOMP_AGENT_METRICS_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/fd.h"
#include "agent/metrics/registry.h"

namespace seccomp_agent::metrics {

struct HttpServerOptions {
  int max_connections = 64;
  absl::Duration timeout = absl::Seconds(5);
  size_t max_request_bytes = 8192;
  size_t max_pending_bytes = size_t{32} << 20;
};

class HttpServer {
 public:
  // Binds `address` and starts serving on a background thread. `registry`
  // must outlive the server. `healthy` may be empty (always healthy).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& address, const Registry* registry, std::function<bool()> healthy,
      const HttpServerOptions& opts = HttpServerOptions());
  ~HttpServer();  // stops and joins

  // The bound port (useful with port 0).
  int port() const { return port_; }
  // Connections open now, and those closed early (for a newer one, or at
  // the deadline); for tests and logs.
  int open_connections() const { return open_.load(); }
  uint64_t closed_early() const { return closed_early_.load(); }

 private:
  struct Conn;
  HttpServer(const Registry* registry, std::function<bool()> healthy,
             const HttpServerOptions& opts);
  absl::Status Listen(const std::string& address);
  void Loop();
  void AcceptAll();
  void OnReadable(Conn* c);
  void Respond(Conn* c);
  void OnWritable(Conn* c);
  void MakeRoomForOutput(size_t bytes);
  void Close(Conn* c, bool early);
  int MsUntilNextDeadline() const;

  const Registry* registry_;
  std::function<bool()> healthy_;
  const HttpServerOptions opts_;
  UniqueFd listen_fd_, epoll_fd_, stop_fd_;
  int port_ = 0;
  std::list<Conn> conns_;  // oldest first (so also by deadline); server thread only
  std::list<Conn> dead_;   // closed this round (events may still name them)
  size_t pending_bytes_ = 0;
  std::atomic<int> open_{0};
  std::atomic<uint64_t> closed_early_{0};
  std::thread thread_;
};

// Splits "host:port" / "[v6]:port" / ":port" (host "0.0.0.0").
absl::Status ParseHostPort(const std::string& address, std::string* host, int* port);

// The whole response (status line, headers, body) to one request head
// (request line and headers, up to the empty line). Pure: for tests.
std::string HttpResponseFor(absl::string_view head, const Registry& registry, bool healthy);

}  // namespace seccomp_agent::metrics

#endif  // SECCOMP_AGENT_METRICS_HTTP_SERVER_H_
