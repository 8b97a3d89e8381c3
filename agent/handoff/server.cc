#include "agent/handoff/server.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "agent/common/status.h"
#include "agent/common/unix_socket.h"
#include "agent/seccomp/unotify.h"
#include "spdlog/spdlog.h"

namespace seccomp_agent {
namespace {

constexpr uint64_t kStopToken = 0;
constexpr uint64_t kListenToken = 1;
// Fds accepted per recvmsg before MSG_CTRUNC; more than one is refused
// anyway, but a few fit so the log can say how many came.
constexpr size_t kMaxFdsPerRecv = 8;
constexpr size_t kReadChunk = 16 * 1024;
constexpr int kAcceptBurst = 64;  // accepts per wake-up, then serve the others
constexpr auto kAcceptPause = std::chrono::milliseconds(100);  // after EMFILE etc.
constexpr size_t kMaxReasonChars = 400;

// Log text from untrusted bytes: no control characters (no forged lines),
// bounded length.
std::string ForLog(absl::string_view s) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxReasonChars) + 3);
  for (char c : s.substr(0, kMaxReasonChars)) {
    unsigned char u = static_cast<unsigned char>(c);
    out.push_back((u < 0x20 || u == 0x7f) ? '?' : c);
  }
  if (s.size() > kMaxReasonChars) out += "...";
  return out;
}

// The idle limit as a clock duration; false when disabled. Capped at a year
// so time_point arithmetic cannot overflow.
bool IdleLimit(absl::Duration d, std::chrono::nanoseconds* out) {
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) return false;
  *out = absl::ToChronoNanoseconds(std::min(d, absl::Hours(24 * 365)));
  return true;
}

bool IsWhitespace(absl::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

}  // namespace

struct HandoffServer::Connection {
  UniqueFd fd;
  pid_t peer_pid = 0;
  uid_t peer_uid = 0;
  Clock::time_point accepted_at;
  Clock::time_point last_activity;
  std::string buffer;
  std::vector<UniqueFd> fds;  // every fd received, in arrival order
  JsonFramer framer;
};

HandoffServer::HandoffServer(Options options, std::function<void(Handoff)> on_handoff)
    : options_(std::move(options)), on_handoff_(std::move(on_handoff)) {}

absl::StatusOr<std::unique_ptr<HandoffServer>> HandoffServer::Start(
    Options options, std::function<void(Handoff)> on_handoff) {
  UniqueFd adopted(options.adopt_fd);  // owned from here, also on failure
  options.adopt_fd = -1;
  if (!on_handoff) return absl::InvalidArgumentError("on_handoff is required");
  if (options.allowed_uids.empty()) {
    return absl::InvalidArgumentError("allowed_uids is empty: no runtime could hand off");
  }
  if (options.max_message_bytes == 0) return absl::InvalidArgumentError("max_message_bytes is 0");
  if (options.max_pending == 0) return absl::InvalidArgumentError("max_pending is 0");

  std::unique_ptr<HandoffServer> server(
      new HandoffServer(std::move(options), std::move(on_handoff)));
  server->listen_fd_ = std::move(adopted);
  SA_RETURN_IF_ERROR(server->Init());
  server->thread_ = std::thread([s = server.get()] { s->Run(); });
  return server;
}

absl::Status HandoffServer::Init() {
  if (listen_fd_) {
    // Adopted socket: check it is what the runtimes need.
    int fd = listen_fd_.get();
    int domain = 0, type = 0, listening = 0;
    socklen_t len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
      return ErrnoStatus(errno, "adopted fd: getsockopt SO_DOMAIN");
    }
    len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
      return ErrnoStatus(errno, "adopted fd: getsockopt SO_TYPE");
    }
    len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) {
      return ErrnoStatus(errno, "adopted fd: getsockopt SO_ACCEPTCONN");
    }
    if (domain != AF_UNIX || type != SOCK_STREAM || !listening) {
      return absl::InvalidArgumentError(
          "adopted fd is not a listening AF_UNIX SOCK_STREAM socket (runc and crun need one)");
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
      return ErrnoStatus(errno, "adopted fd: set O_NONBLOCK");
    }
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
      return ErrnoStatus(errno, "adopted fd: set FD_CLOEXEC");
    sockaddr_un addr{};
    socklen_t alen = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) == 0 &&
        alen > offsetof(sockaddr_un, sun_path) && addr.sun_path[0] != '\0') {
      socket_path_ = std::string(addr.sun_path, strnlen(addr.sun_path, sizeof(addr.sun_path)));
    }
  } else {
    socket_path_ = options_.socket_path;
    auto l = UnixListener::Listen(socket_path_, {SOCK_STREAM | SOCK_NONBLOCK, 0600, SOMAXCONN});
    if (l.status().code() == absl::StatusCode::kAlreadyExists) {
      return absl::AlreadyExistsError(absl::StrCat("another agent is listening on ", socket_path_));
    }
    if (!l.ok()) return l.status();
    listener_ = *std::move(l);
  }

  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) return ErrnoStatus(errno, "epoll_create1");
  stop_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_) return ErrnoStatus(errno, "eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kStopToken;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, stop_fd_.get(), &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl ADD eventfd");
  }
  ev.events = EPOLLIN;
  ev.data.u64 = kListenToken;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, ListenFd(), &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl ADD listen socket");
  }
  spdlog::info("handoff: listening on {}", socket_path_.empty() ? "(adopted fd)" : socket_path_);
  return absl::OkStatus();
}

HandoffServer::~HandoffServer() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_fd_.get(), &one, sizeof(one));
    thread_.join();
  }
  connections_.clear();  // closes every connection and received fd
  pending_count_ = 0;
  listen_fd_.reset();
  listener_.Close();  // unlinks only our own file: a newer agent may have replaced it
}

void HandoffServer::Run() {
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  for (;;) {
    int n = epoll_wait(epoll_fd_.get(), events, kMaxEvents, NextTimeoutMs());
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("handoff: epoll_wait failed, server stops: {}", strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t token = events[i].data.u64;
      if (token == kStopToken) return;
      if (token == kListenToken) {
        AcceptAll();
      } else {
        ReadConnection(token);
      }
    }
    if (accept_paused_ && Clock::now() >= accept_resume_at_) ResumeAccept();
    DropIdle();
  }
}

void HandoffServer::PauseAccept() {
  if (accept_paused_) return;
  epoll_event ev{};
  ev.events = 0;
  ev.data.u64 = kListenToken;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, ListenFd(), &ev);
  accept_paused_ = true;
  accept_resume_at_ = Clock::now() + kAcceptPause;
}

void HandoffServer::ResumeAccept() {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenToken;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, ListenFd(), &ev);
  accept_paused_ = false;
}

void HandoffServer::AcceptAll() {
  for (int i = 0; i < kAcceptBurst; ++i) {
    UniqueFd conn(accept4(ListenFd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!conn) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED) continue;
      // Out of fds or memory: the listening socket would stay readable and
      // spin the loop; stop accepting for a moment (pending runtimes wait
      // in the backlog).
      spdlog::warn("handoff: accept failed, pausing accepts for {} ms: {}", kAcceptPause.count(),
                   strerror(err));
      PauseAccept();
      return;
    }
    counters_.connections++;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      spdlog::warn("handoff rejected: peer pid ?: SO_PEERCRED failed: {}", strerror(errno));
      counters_.rejected[static_cast<int>(RejectReason::kConnectionError)]++;
      continue;  // `conn` closes
    }
    if (std::find(options_.allowed_uids.begin(), options_.allowed_uids.end(), cred.uid) ==
        options_.allowed_uids.end()) {
      // Refused before reading: anything it sent (fds included) is dropped
      // by the kernel when `conn` closes.
      spdlog::warn("handoff rejected: peer pid {}: peer uid {} is not allowed", cred.pid, cred.uid);
      counters_.rejected[static_cast<int>(RejectReason::kPeerUid)]++;
      continue;
    }

    const uint64_t token = next_token_++;
    auto c = std::make_unique<Connection>();
    c->peer_pid = cred.pid;
    c->peer_uid = cred.uid;
    c->accepted_at = c->last_activity = Clock::now();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = token;
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, conn.get(), &ev) != 0) {
      spdlog::warn("handoff rejected: peer pid {}: epoll_ctl failed: {}", cred.pid,
                   strerror(errno));
      counters_.rejected[static_cast<int>(RejectReason::kConnectionError)]++;
      continue;
    }
    c->fd = std::move(conn);
    connections_.emplace(token, std::move(c));
    pending_count_ = connections_.size();

    while (connections_.size() > options_.max_pending) {
      auto oldest = connections_.begin();
      const Connection& o = *oldest->second;
      const auto age =
          std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - o.accepted_at);
      spdlog::warn(
          "handoff rejected: peer pid {}: more than {} pending connections, closing the oldest "
          "(connected {}s ago, {} bytes received)",
          o.peer_pid, options_.max_pending, age.count(), o.buffer.size());
      Close(oldest->first);
      counters_.evicted_pending++;
    }
  }
  // Burst done; the listening socket stays readable if more are waiting.
}

void HandoffServer::ReadConnection(uint64_t token) {
  auto it = connections_.find(token);
  if (it == connections_.end()) return;
  Connection& c = *it->second;
  const size_t cap = options_.max_message_bytes;
  char data[kReadChunk];
  for (;;) {
    // Never hold more than cap + 1 bytes: one past the cap proves "too large".
    const size_t room = std::min(kReadChunk, cap + 1 - c.buffer.size());
    auto m = RecvWithFds(c.fd.get(), absl::MakeSpan(data, room), kMaxFdsPerRecv, MSG_DONTWAIT);
    if (!m.ok()) {
      if (ErrnoOf(m.status()) == EAGAIN) return;  // wait for more
      Reject(token, RejectReason::kConnectionError, std::string(m.status().message()));
      return;
    }
    // Own every received fd before looking at anything else.
    for (UniqueFd& fd : m->fds) c.fds.push_back(std::move(fd));
    if (m->control_truncated) {
      Reject(
          token, RejectReason::kControlTruncated,
          absl::StrCat("ancillary data truncated (more than ", kMaxFdsPerRecv,
                       " fds or unexpected control messages); ", c.fds.size(), " fd(s) received"));
      return;
    }
    const size_t n = m->bytes;
    if (c.fds.size() > 1) {
      Reject(token, RejectReason::kFdCount,
             absl::StrCat("expected exactly 1 fd in SCM_RIGHTS, received ", c.fds.size()));
      return;
    }
    if (n == 0) {
      if (c.buffer.empty()) {
        Reject(token, RejectReason::kClosedEarly,
               absl::StrCat("connection closed before sending anything (", c.fds.size(),
                            " fd(s) received)"));
      } else {
        Reject(token, RejectReason::kClosedEarly,
               absl::StrCat("connection closed after ", c.buffer.size(),
                            " bytes, before a complete JSON message"));
      }
      return;
    }
    c.last_activity = Clock::now();
    c.buffer.append(data, static_cast<size_t>(n));
    switch (c.framer.Scan(c.buffer)) {
      case JsonFramer::State::kError:
        Reject(token, RejectReason::kMalformedJson, c.framer.error());
        return;
      case JsonFramer::State::kComplete:
        CompleteMessage(token);
        return;
      case JsonFramer::State::kNeedMore:
        if (c.buffer.size() > cap) {
          Reject(token, RejectReason::kTooLarge,
                 absl::StrCat("message larger than ", cap, " bytes without a complete JSON value"));
          return;
        }
        break;
    }
  }
}

void HandoffServer::CompleteMessage(uint64_t token) {
  auto it = connections_.find(token);
  if (it == connections_.end()) return;
  Connection& c = *it->second;
  absl::string_view all = c.buffer;
  if (!IsWhitespace(all.substr(c.framer.end()))) {
    Reject(token, RejectReason::kMalformedJson, "unexpected data after the JSON message");
    return;
  }
  RejectReason reason = RejectReason::kInvalidMessage;
  absl::StatusOr<ContainerInfo> info = ParseRuntimeMessage(all, c.fds.size(), &reason);
  if (!info.ok()) {
    Reject(token, reason, std::string(info.status().message()));
    return;
  }
  // ParseRuntimeMessage guarantees exactly one fd.
  absl::Status listener = CheckIsListener(c.fds[0].get());
  if (!listener.ok()) {
    Reject(token, RejectReason::kNotListener, std::string(listener.message()));
    return;
  }
  Handoff h;
  h.container = std::move(*info);
  h.listener = std::move(c.fds[0]);
  h.peer_pid = c.peer_pid;
  h.peer_uid = c.peer_uid;
  Close(token);  // runtimes never wait for a reply
  counters_.handoffs++;
  try {
    on_handoff_(std::move(h));
  } catch (const std::exception& e) {
    spdlog::error("handoff: on_handoff threw: {}", e.what());
  } catch (...) {
    spdlog::error("handoff: on_handoff threw a non-std exception");
  }
}

void HandoffServer::Reject(uint64_t token, RejectReason reason, const std::string& why) {
  auto it = connections_.find(token);
  if (it == connections_.end()) return;
  spdlog::warn("handoff rejected: peer pid {}: {}", it->second->peer_pid, ForLog(why));
  Close(token);
  // Counted after the close, so a reader that sees the count sees the close.
  counters_.rejected[static_cast<int>(reason)]++;
}

void HandoffServer::Close(uint64_t token) {
  auto it = connections_.find(token);
  if (it == connections_.end()) return;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, it->second->fd.get(), nullptr);
  connections_.erase(it);  // closes the connection and every received fd
  pending_count_ = connections_.size();
}

void HandoffServer::DropIdle() {
  std::chrono::nanoseconds limit;
  if (!IdleLimit(options_.idle_limit, &limit)) return;
  const auto now = Clock::now();
  std::vector<uint64_t> idle;
  for (const auto& [token, c] : connections_) {
    if (now - c->last_activity >= limit) idle.push_back(token);
  }
  for (uint64_t token : idle) {
    const Connection& c = *connections_.at(token);
    spdlog::info("handoff: closing connection from peer pid {}: idle for {}, {} bytes received",
                 c.peer_pid, absl::FormatDuration(options_.idle_limit), c.buffer.size());
    Close(token);
    counters_.dropped_idle++;
  }
}

int HandoffServer::NextTimeoutMs() const {
  const auto now = Clock::now();
  bool have = false;
  Clock::time_point next;
  if (accept_paused_) {
    next = accept_resume_at_;
    have = true;
  }
  std::chrono::nanoseconds limit;
  if (IdleLimit(options_.idle_limit, &limit)) {
    for (const auto& [token, c] : connections_) {
      const auto at = c->last_activity + limit;
      if (!have || at < next) {
        next = at;
        have = true;
      }
    }
  }
  if (!have) return -1;
  if (next <= now) return 0;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1;
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

}  // namespace seccomp_agent
