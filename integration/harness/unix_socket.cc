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
#include "agent/common/unix_socket.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::integration {

absl::Status SendWithFds(int sock, absl::string_view bytes, const std::vector<int>& fds) {
  // fds need at least one byte to ride on; they go with the first chunk.
  absl::string_view first = bytes.empty() ? absl::string_view("\0", 1) : bytes;
  ssize_t n;
  do {
    n = SendmsgFds(sock, first.data(), first.size(), fds.data(), fds.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus(errno, "sendmsg");
  if (bytes.empty() || static_cast<size_t>(n) == bytes.size()) return absl::OkStatus();
  return seccomp_agent::SendWithFds(sock, bytes.substr(n));
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
  auto l = std::unique_ptr<FakeListener>(new FakeListener());
  SA_ASSIGN_OR_RETURN(l->listen_, UnixListener::Listen(path, {SOCK_STREAM, 0600, 16}));
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
    std::vector<pollfd> pfds = {{stop_r_.get(), POLLIN, 0}, {listen_.fd(), POLLIN, 0}};
    for (auto& c : conns) pfds.push_back({c->done ? -1 : c->fd.get(), POLLIN, 0});
    if (poll(pfds.data(), pfds.size(), 1000) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (pfds[0].revents) return;
    if (pfds[1].revents & POLLIN) {
      UniqueFd c(accept4(listen_.fd(), nullptr, nullptr, SOCK_CLOEXEC));
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
      auto m = RecvWithFds(c.fd.get(), absl::MakeSpan(buf), 8);
      if (!m.ok() || m->bytes == 0) {
        c.done = true;
        continue;
      }
      for (UniqueFd& fd : m->fds) c.h.fds.push_back(std::move(fd));
      const size_t n = m->bytes;
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
