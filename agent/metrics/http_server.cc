#include "agent/metrics/http_server.h"

#include <netdb.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/status.h"
#include "agent/metrics/exposition.h"

namespace seccomp_agent::metrics {

namespace {

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::string Response(int code, absl::string_view reason, absl::string_view type,
                     absl::string_view body, bool head_only) {
  std::string out =
      absl::StrCat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Type: ", type,
                   "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n");
  if (!head_only) out.append(body.data(), body.size());
  return out;
}

// Where the request head ends (just past the empty line), or npos.
size_t HeadEnd(const std::string& in) {
  size_t crlf = in.find("\r\n\r\n");
  if (crlf != std::string::npos) return crlf + 4;
  size_t lf = in.find("\n\n");
  return lf == std::string::npos ? std::string::npos : lf + 2;
}

}  // namespace

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

std::string HttpResponseFor(absl::string_view head, const Registry& registry, bool healthy) {
  absl::string_view line = head.substr(0, head.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    return Response(400, "Bad Request", "text/plain", "bad request\n", false);
  }
  const bool head_only = parts[0] == "HEAD";
  if (parts[0] != "GET" && !head_only) {
    return Response(405, "Method Not Allowed", "text/plain", "GET or HEAD\n", false);
  }
  absl::string_view path = parts[1].substr(0, parts[1].find('?'));
  if (path == "/metrics") return Response(200, "OK", kContentType, registry.Render(), head_only);
  if (path == "/healthz") {
    return healthy ? Response(200, "OK", "text/plain", "ok\n", head_only)
                   : Response(503, "Service Unavailable", "text/plain", "not ready\n", head_only);
  }
  return Response(404, "Not Found", "text/plain", "not found\n", head_only);
}

struct HttpServer::Conn {
  UniqueFd fd;
  int64_t deadline_ns = 0;
  std::string in;
  std::string out;  // the response, once the request is complete
  size_t sent = 0;
  bool responding = false;
  bool closed = false;
  std::list<Conn>::iterator self;
};

HttpServer::HttpServer(const Registry* registry, std::function<bool()> healthy,
                       const HttpServerOptions& opts)
    : registry_(registry), healthy_(std::move(healthy)), opts_(opts) {}

HttpServer::~HttpServer() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_fd_.get(), &one, sizeof(one));
    thread_.join();
  }
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address,
                                                              const Registry* registry,
                                                              std::function<bool()> healthy,
                                                              const HttpServerOptions& opts) {
  if (opts.max_connections < 1) return absl::InvalidArgumentError("metrics: max connections < 1");
  std::unique_ptr<HttpServer> srv(new HttpServer(registry, std::move(healthy), opts));
  SA_RETURN_IF_ERROR(srv->Listen(address));
  srv->epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  srv->stop_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!srv->epoll_fd_ || !srv->stop_fd_) return ErrnoStatus(errno, "metrics: epoll/eventfd");
  for (UniqueFd* fd : {&srv->listen_fd_, &srv->stop_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = fd;  // the two fds are told apart from connections by address
    if (epoll_ctl(srv->epoll_fd_.get(), EPOLL_CTL_ADD, fd->get(), &ev) != 0) {
      return ErrnoStatus(errno, "metrics: epoll_ctl");
    }
  }
  HttpServer* raw = srv.get();
  srv->thread_ = std::thread([raw] { raw->Loop(); });
  return srv;
}

absl::Status HttpServer::Listen(const std::string& address) {
  std::string host;
  int port = 0;
  SA_RETURN_IF_ERROR(ParseHostPort(address, &host, &port));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc != 0) {
    return absl::UnavailableError(absl::StrCat("metrics: ", address, ": ", gai_strerror(rc)));
  }
  int err = 0;
  for (addrinfo* ai = res; ai != nullptr && !listen_fd_; ai = ai->ai_next) {
    UniqueFd fd(socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int on = 1;
    if (fd && setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0 &&
        bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd.get(), 128) == 0) {
      listen_fd_ = std::move(fd);
    } else {
      err = errno;
    }
  }
  freeaddrinfo(res);
  if (!listen_fd_) return ErrnoStatus(err, absl::StrCat("metrics: cannot bind ", address));
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return absl::OkStatus();
}

void HttpServer::Loop() {
  epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(epoll_fd_.get(), evs, 64, MsUntilNextDeadline());
    if (n < 0 && errno != EINTR) return;
    for (int i = 0; i < n; ++i) {
      void* p = evs[i].data.ptr;
      if (p == &stop_fd_) return;
      if (p == &listen_fd_) {
        AcceptAll();
        continue;
      }
      Conn* c = static_cast<Conn*>(p);
      if (c->closed) continue;
      c->responding ? OnWritable(c) : OnReadable(c);
    }
    const int64_t now = MonoNs();
    while (!conns_.empty() && conns_.front().deadline_ns <= now) Close(&conns_.front(), true);
    dead_.clear();
  }
}

int HttpServer::MsUntilNextDeadline() const {
  if (conns_.empty()) return -1;
  const int64_t ns = conns_.front().deadline_ns - MonoNs();
  return ns <= 0 ? 0 : static_cast<int>(ns / 1000000 + 1);
}

void HttpServer::AcceptAll() {
  for (int i = 0; i < 256; ++i) {
    int fd = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if ((errno == EMFILE || errno == ENFILE) && !conns_.empty()) {
        Close(&conns_.front(), true);  // out of fds: the oldest makes room
        continue;
      }
      return;  // EAGAIN, or out of fds with nothing of ours to close
    }
    if (static_cast<int>(conns_.size()) >= opts_.max_connections) Close(&conns_.front(), true);
    Conn& c = conns_.emplace_back();
    c.self = std::prev(conns_.end());
    c.fd.reset(fd);
    c.deadline_ns = MonoNs() + absl::ToInt64Nanoseconds(opts_.timeout);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = &c;
    open_++;
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) Close(&c, false);
  }
}

void HttpServer::OnReadable(Conn* c) {
  char buf[4096];
  for (;;) {
    ssize_t n = recv(c->fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) return Close(c, false);  // gone before a whole request
    c->in.append(buf, static_cast<size_t>(n));
    if (HeadEnd(c->in) != std::string::npos) return Respond(c);
    if (c->in.size() > opts_.max_request_bytes) return Close(c, true);
  }
}

void HttpServer::Respond(Conn* c) {
  std::string out = HttpResponseFor(absl::string_view(c->in).substr(0, HeadEnd(c->in)), *registry_,
                                    !healthy_ || healthy_());
  MakeRoomForOutput(out.size());
  c->in.clear();
  c->out = std::move(out);
  c->responding = true;
  pending_bytes_ += c->out.size();
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.ptr = c;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, c->fd.get(), &ev) != 0) return Close(c, false);
  OnWritable(c);
}

void HttpServer::OnWritable(Conn* c) {
  while (c->sent < c->out.size()) {
    ssize_t n = send(c->fd.get(), c->out.data() + c->sent, c->out.size() - c->sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) return Close(c, false);
    c->sent += static_cast<size_t>(n);
    pending_bytes_ -= static_cast<size_t>(n);
  }
  Close(c, false);  // Connection: close
}

// Closes the oldest connections with unsent bytes until `bytes` more fit
// (or none is left to close: one response alone may be larger).
void HttpServer::MakeRoomForOutput(size_t bytes) {
  for (auto it = conns_.begin();
       it != conns_.end() && pending_bytes_ + bytes > opts_.max_pending_bytes;) {
    Conn* c = &*it++;
    if (c->responding) Close(c, true);
  }
}

void HttpServer::Close(Conn* c, bool early) {
  if (c->closed) return;
  c->closed = true;
  pending_bytes_ -= c->out.size() - c->sent;
  open_--;  // counted before the peer can see the close
  if (early) closed_early_++;
  c->fd.reset();  // also leaves the epoll set
  dead_.splice(dead_.end(), conns_, c->self);
}

}  // namespace seccomp_agent::metrics
