// The metrics endpoint's own bounds, over real sockets: idle connections
// beyond the cap close the oldest instead of piling up (fds stay bounded and
// /healthz answers), an idle or slow connection is closed at the timeout, an
// oversized request is refused, and what each request line gets.
#include "agent/metrics/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "agent/common/fd.h"
#include "agent/metrics/exposition.h"
#include "gtest/gtest.h"
#include "agent/testing/wait.h"

namespace seccomp_agent::metrics {
namespace {

int CountFds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1;  // the DIR's own fd
}

UniqueFd Connect(int port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return UniqueFd();
  timeval tv{30, 0};  // generous: only a broken server gets near it
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// Everything the server sends until it closes ("<no eof>" if the wait ran
// out or the read failed).
std::string ReadToEof(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) return out;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return "<no eof>";
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string Get(int port, const std::string& path) {
  UniqueFd fd = Connect(port);
  if (!fd) return "";
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  if (send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return "";
  }
  return ReadToEof(fd.get());
}

class HttpServerBoundsTest : public ::testing::Test {
 protected:
  void Start(const HttpServerOptions& o) {
    registry_.AddCollector([](std::string* out) {
      WriteHeader(out, "test_total", "A counter.", "counter");
      WriteSample(out, "test_total", "", 7);
    });
    auto s = HttpServer::Start(
        "127.0.0.1:0", &registry_, [this] { return healthy_; }, o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  Registry registry_;
  bool healthy_ = true;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerBoundsTest, IdleConnectionsBeyondTheCapCloseTheOldestAndHealthzAnswers) {
  rlimit rl;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  const int kIdle = 1000;
  ASSERT_GE(rl.rlim_max, static_cast<rlim_t>(2 * kIdle + 100)) << "RLIMIT_NOFILE too low";
  if (rl.rlim_cur < static_cast<rlim_t>(2 * kIdle + 100)) {
    rl.rlim_cur = 2 * kIdle + 100;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  HttpServerOptions o;
  o.max_connections = 16;
  o.timeout = absl::Minutes(10);  // the cap, not the timeout, is under test
  Start(o);
  const int before = CountFds();
  std::vector<UniqueFd> idle;
  for (int i = 0; i < kIdle; ++i) {
    idle.push_back(Connect(server_->port()));
    ASSERT_TRUE(idle.back()) << i;
  }
  // The server took them all and kept at most the cap.
  ASSERT_TRUE(testing::WaitFor([&] { return server_->closed_early() >= kIdle - 16u; }))
      << server_->closed_early();
  EXPECT_LE(server_->open_connections(), 16);
  EXPECT_LE(CountFds() - before - kIdle, 16) << "server-side fds beyond the cap";
  // A new request gets through while the flood is still open.
  std::string health = Get(server_->port(), "/healthz");
  EXPECT_EQ(health.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << health;
  EXPECT_NE(health.find("\r\n\r\nok\n"), std::string::npos) << health;
  std::string metrics = Get(server_->port(), "/metrics");
  EXPECT_NE(metrics.find("test_total 7"), std::string::npos) << metrics;
  // The oldest idle connections were closed by the server: EOF on the client.
  char c;
  EXPECT_EQ(recv(idle.front().get(), &c, 1, 0), 0);
}

TEST_F(HttpServerBoundsTest, AnIdleConnectionIsClosedAtTheTimeout) {
  HttpServerOptions o;
  o.timeout = absl::Milliseconds(200);
  Start(o);
  UniqueFd idle = Connect(server_->port());
  ASSERT_TRUE(idle);
  char c;
  EXPECT_EQ(recv(idle.get(), &c, 1, 0), 0) << "not closed by the server";
  EXPECT_GE(server_->closed_early(), 1u);
  EXPECT_EQ(server_->open_connections(), 0);
  // A request sent in pieces slower than the timeout is cut off too.
  UniqueFd slow = Connect(server_->port());
  ASSERT_TRUE(slow);
  ASSERT_EQ(send(slow.get(), "GET /healthz", 12, MSG_NOSIGNAL), 12);
  EXPECT_EQ(ReadToEof(slow.get()), "");
}

TEST_F(HttpServerBoundsTest, AnOversizedRequestIsClosedWithoutAnAnswer) {
  HttpServerOptions o;
  o.max_request_bytes = 1024;
  Start(o);
  UniqueFd fd = Connect(server_->port());
  ASSERT_TRUE(fd);
  std::string req = "GET /healthz HTTP/1.1\r\nX: " + std::string(4096, 'a');
  send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL);
  // Closed with the request unread: a reset or an end, never an answer.
  char c;
  ssize_t n = recv(fd.get(), &c, 1, 0);
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << n << " " << strerror(errno);
  // And the server still answers others.
  EXPECT_EQ(Get(server_->port(), "/healthz").rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(HttpServerBoundsTest, UnsentResponsesBeyondTheBudgetCloseTheOldestReader) {
  const std::string big(16 << 20, 'x');  // far more than the socket buffers hold
  registry_.AddCollector([&big](std::string* out) { out->append(big); });
  HttpServerOptions o;
  o.max_pending_bytes = 8 << 20;
  o.timeout = absl::Minutes(10);
  Start(o);
  // A asks and does not read: most of its response waits in the server.
  UniqueFd a(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int small = 4096;
  setsockopt(a.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(a.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string req = "GET /metrics HTTP/1.1\r\n\r\n";
  ASSERT_EQ(send(a.get(), req.data(), req.size(), MSG_NOSIGNAL), ssize_t(req.size()));
  // Once A sees its first byte, its response is rendered and mostly unsent.
  timeval tv{30, 0};
  setsockopt(a.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char first;
  ASSERT_EQ(recv(a.get(), &first, 1, MSG_PEEK), 1);
  // B's response does not fit beside A's: A is closed, B is served whole.
  std::string b = Get(server_->port(), "/metrics");
  EXPECT_GT(b.size(), big.size());
  EXPECT_EQ(server_->closed_early(), 1u);
  size_t got = 0;
  char buf[65536];
  for (ssize_t n; (n = recv(a.get(), buf, sizeof(buf), 0)) > 0;) got += n;
  EXPECT_LT(got, big.size()) << "A got its whole response";
}

TEST_F(HttpServerBoundsTest, UnhealthyIs503) {
  healthy_ = false;
  Start(HttpServerOptions());
  EXPECT_EQ(Get(server_->port(), "/healthz").rfind("HTTP/1.1 503", 0), 0u);
}

TEST(HttpResponseForTest, AnswersByRequestLine) {
  Registry r;
  r.AddCollector([](std::string* out) { out->append("m 1\n"); });
  auto status = [&](const std::string& head) {
    std::string resp = HttpResponseFor(head, r, true);
    return resp.substr(0, resp.find("\r\n"));
  };
  EXPECT_EQ(status("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), "HTTP/1.1 200 OK");
  EXPECT_EQ(status("GET /metrics?x=1 HTTP/1.0\n\n"), "HTTP/1.1 200 OK");
  EXPECT_EQ(status("GET /healthz HTTP/1.1\r\n\r\n"), "HTTP/1.1 200 OK");
  EXPECT_EQ(status("GET /other HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(status("POST /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_EQ(status("GET /metrics\r\n\r\n"), "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(status("garbage\r\n\r\n"), "HTTP/1.1 400 Bad Request");
  std::string get = HttpResponseFor("GET /metrics HTTP/1.1\r\n\r\n", r, true);
  EXPECT_NE(get.find("Content-Type: " + std::string(kContentType)), std::string::npos);
  EXPECT_NE(get.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_NE(get.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(get.substr(get.size() - 4), "m 1\n");
  std::string head = HttpResponseFor("HEAD /metrics HTTP/1.1\r\n\r\n", r, true);
  EXPECT_NE(head.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n") << "HEAD has no body";
}

}  // namespace
}  // namespace seccomp_agent::metrics
