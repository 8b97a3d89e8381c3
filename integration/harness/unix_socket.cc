#include "integration/harness/unix_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "agent/common/status.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::integration {

namespace {

absl::StatusOr<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("unix socket path too long: " + path);
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace

absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path) {
  SA_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) return ErrnoStatus(errno, "socket");
  if (connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(errno, "connect " + path);
  }
  return s;
}

absl::Status SendWithFds(int sock, absl::string_view bytes, const std::vector<int>& fds) {
  size_t off = 0;
  bool fds_sent = fds.empty();
  while (off < bytes.size() || !fds_sent) {
    char dummy = 0;
    iovec iov;
    if (bytes.empty()) {
      iov = {&dummy, 1};  // fds need at least one byte to ride on
    } else {
      iov = {const_cast<char*>(bytes.data() + off), bytes.size() - off};
    }
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;
    if (!fds_sent) {
      control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "sendmsg");
    }
    fds_sent = true;
    if (bytes.empty()) break;
    off += n;
  }
  return absl::OkStatus();
}

std::string RuntimeMessageJson(const std::string& id, pid_t pid,
                               const std::vector<std::string>& fd_names) {
  nlohmann::json j = {
      {"ociVersion", "1.0.2-dev"},
      {"fds", fd_names},
      {"pid", pid},
      {"state",
       {{"ociVersion", "1.0.2-dev"},
        {"id", id},
        {"status", "creating"},
        {"pid", pid},
        {"bundle", "/tmp/sa-fake-bundle"}}},
  };
  return j.dump();
}

std::string FdTarget(int fd) {
  char buf[256];
  ssize_t n = readlink(absl::StrCat("/proc/self/fd/", fd).c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return absl::StrCat("readlink: ", strerror(errno));
  return std::string(buf, n);
}

absl::StatusOr<std::unique_ptr<FakeListener>> FakeListener::Create(const std::string& path) {
  SA_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  auto l = std::unique_ptr<FakeListener>(new FakeListener());
  l->listen_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!l->listen_) return ErrnoStatus(errno, "socket");
  unlink(path.c_str());
  if (bind(l->listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(errno, "bind " + path);
  }
  if (listen(l->listen_.get(), 16) != 0) return ErrnoStatus(errno, "listen");
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  l->stop_r_.reset(p[0]);
  l->stop_w_.reset(p[1]);
  FakeListener* raw = l.get();
  l->thread_ = std::thread([raw] { raw->Serve(); });
  return l;
}

FakeListener::~FakeListener() {
  (void)!write(stop_w_.get(), "x", 1);
  if (thread_.joinable()) thread_.join();
}

void FakeListener::Serve() {
  struct Conn {
    UniqueFd fd;
    ReceivedHandoff h;
    bool done = false;
  };
  std::vector<std::unique_ptr<Conn>> conns;
  while (true) {
    std::vector<pollfd> pfds = {{stop_r_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}};
    for (auto& c : conns) pfds.push_back({c->done ? -1 : c->fd.get(), POLLIN, 0});
    if (poll(pfds.data(), pfds.size(), 1000) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (pfds[0].revents) return;
    if (pfds[1].revents & POLLIN) {
      UniqueFd c(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (c) {
        auto conn = std::make_unique<Conn>();
        ucred cred{};
        socklen_t len = sizeof(cred);
        if (getsockopt(c.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
          conn->h.peer_pid = cred.pid;
          conn->h.peer_uid = cred.uid;
        }
        conn->fd = std::move(c);
        conns.push_back(std::move(conn));
      }
    }
    for (size_t i = 0; i + 2 < pfds.size(); ++i) {  // not the conn accepted just now
      Conn& c = *conns[i];
      if (c.done || !(pfds[i + 2].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      char control[CMSG_SPACE(sizeof(int) * 8)];
      iovec iov = {buf, sizeof(buf)};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      ssize_t n = recvmsg(c.fd.get(), &msg, MSG_CMSG_CLOEXEC);
      if (n <= 0) {
        c.done = true;
        continue;
      }
      for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        size_t nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t k = 0; k < nfds; ++k) {
          int fd;
          memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
          c.h.fds.emplace_back(fd);
        }
      }
      c.h.bytes.append(buf, n);
      if (nlohmann::json::accept(c.h.bytes)) {
        c.done = true;
        absl::MutexLock l(&mu_);
        received_.push_back(std::move(c.h));
        connections_.push_back(std::move(c.fd));  // held open like an agent
      }
    }
  }
}

absl::StatusOr<ReceivedHandoff> FakeListener::Next(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto has = [this]() { return !received_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&has), timeout)) {
    return absl::DeadlineExceededError("no complete handoff message received");
  }
  ReceivedHandoff h = std::move(received_.front());
  received_.erase(received_.begin());
  return h;
}

}  // namespace seccomp_agent::integration
