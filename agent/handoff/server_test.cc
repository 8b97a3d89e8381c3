// Real sockets, real seccomp listeners (TrappedChild), real SCM_RIGHTS.
//
// Fork hygiene: TrappedChild forks, and a forked child inherits every fd the
// test process holds at that moment (the server's accepted connections and
// received fds included). Each test therefore spawns its children BEFORE it
// opens the connections and pipes whose closing it checks.
#include "agent/handoff/server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/common/fd.h"
#include "agent/seccomp/unotify.h"
#include "agent/testing/trapped_child.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/spdlog.h"
#include "agent/testing/wait.h"

namespace seccomp_agent {
namespace {

using testing::WaitFor;

using ::seccomp_agent::testing::TrappedChild;
using namespace std::chrono_literals;

constexpr auto kTimeout = 5s;

// ---------------------------------------------------------------- logging

// Keeps every formatted log line so tests can count rejections.
class CaptureSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> Lines() {
    std::lock_guard<std::mutex> l(mu_);
    return lines_;
  }
  void Clear() {
    std::lock_guard<std::mutex> l(mu_);
    lines_.clear();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::lock_guard<std::mutex> l(mu_);
    lines_.emplace_back(msg.payload.data(), msg.payload.size());
    fprintf(stderr, "log: %s\n", lines_.back().c_str());
  }
  void flush_() override {}

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

std::shared_ptr<CaptureSink> Capture() {
  static auto sink = [] {
    auto s = std::make_shared<CaptureSink>();
    auto logger = std::make_shared<spdlog::logger>("test", s);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
    return s;
  }();
  return sink;
}

// ---------------------------------------------------------------- helpers

// True once reading `fd` gives EOF (or a reset): the other end is closed.
bool SeesEof(int fd, std::chrono::milliseconds timeout = kTimeout) {
  pollfd p{fd, POLLIN, 0};
  int rc = poll(&p, 1, static_cast<int>(timeout.count()));
  if (rc <= 0) return false;
  char b[256];
  ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
  if (n < 0 && errno == ENOTSOCK) n = read(fd, b, sizeof(b));
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

// True when `fd` has nothing to report (still open, nothing readable).
bool StillOpen(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 0;
}

UniqueFd Connect(const std::string& path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ADD_FAILURE() << "connect " << path << ": " << strerror(errno);
    return UniqueFd();
  }
  return fd;
}

// One sendmsg with `fds` attached (as runc and crun do).
bool Send(int sock, const std::string& data, const std::vector<int>& fds = {}) {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  return n == static_cast<ssize_t>(data.size());
}

struct Pipe {
  UniqueFd read, write;
};
Pipe MakePipe() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) ADD_FAILURE() << "pipe2: " << strerror(errno);
  return Pipe{UniqueFd(p[0]), UniqueFd(p[1])};
}

std::string RuncMessage(const std::string& id, int pid = 1234,
                        const std::string& fds = R"(["seccompFd"])") {
  return absl::StrCat(R"({"ociVersion":"1.0.2-dev","fds":)", fds, R"(,"pid":)", pid,
                      R"(,"metadata":"m","state":{"ociVersion":"1.0.2-dev","id":")", id,
                      R"(","status":"creating","pid":)", pid, R"(,"bundle":"/bundles/)", id,
                      R"(","annotations":{"io.kubernetes.pod.namespace":"ns1"}}})");
}

std::string CrunMessage(const std::string& id, int pid = 4321) {
  return absl::StrCat(R"({
    "ociVersion": "0.2.0",
    "fds": [
        "seccompFd"
    ],
    "pid": )",
                      pid, R"(,
    "state": {
        "ociVersion": "0.2.0",
        "id": ")",
                      id, R"(",
        "status": "creating",
        "pid": )",
                      pid, R"(,
        "bundle": "/bundles/)",
                      id, R"("
    }
}
)");
}

absl::StatusOr<TrappedChild> SpawnIdleChild() {
  return TrappedChild::Spawn({"getppid"}, [] { return 0; });
}

// Waits for the child to exit (pidfd), with a timeout; -1 on timeout.
int WaitChild(TrappedChild& child, std::chrono::milliseconds timeout = kTimeout) {
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, child.pid(), 0)));
  if (!pidfd) return -2;
  pollfd p{pidfd.get(), POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return -1;
  return child.Wait();
}

std::string TempDir() {
  // Short path: sun_path holds 107 bytes, Bazel's TEST_TMPDIR can be longer.
  char tmpl[] = "/tmp/sa-handoff-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) ADD_FAILURE() << "mkdtemp: " << strerror(errno);
  return tmpl;
}

// ---------------------------------------------------------------- fixture

class HandoffServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Capture()->Clear();
    dir_ = TempDir();
    path_ = dir_ + "/agent.sock";
  }
  void TearDown() override {
    server_.reset();
    std::string cmd = "rm -rf '" + dir_ + "'";
    (void)!system(cmd.c_str());
  }

  HandoffServer::Options DefaultOptions() {
    HandoffServer::Options o;
    o.socket_path = path_;
    return o;
  }

  void StartServer(HandoffServer::Options o) {
    auto s = HandoffServer::Start(std::move(o), [this](Handoff h) {
      std::lock_guard<std::mutex> l(mu_);
      handoffs_.push_back(std::move(h));
      cv_.notify_all();
    });
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  void StartServer() { StartServer(DefaultOptions()); }

  size_t HandoffCount() {
    std::lock_guard<std::mutex> l(mu_);
    return handoffs_.size();
  }

  // Waits for the handoff of container `id` and returns it (listener == -1
  // when it did not come).
  Handoff WaitHandoff(const std::string& id) {
    std::unique_lock<std::mutex> l(mu_);
    Handoff out;
    cv_.wait_for(l, kTimeout, [&] {
      for (auto& h : handoffs_) {
        if (h.container.id == id && h.listener) {
          out = std::move(h);
          return true;
        }
      }
      return false;
    });
    return out;
  }

  std::vector<std::string> RejectionLines() {
    std::vector<std::string> out;
    for (const auto& line : Capture()->Lines()) {
      if (absl::StartsWith(line, "handoff rejected: ")) out.push_back(line);
    }
    return out;
  }

  // The rejection contract: counter for `reason` went up by one, exactly one
  // log line naming our pid and `why`, the callback did not run, the client
  // connection got closed, and every received fd was closed (each pipe read
  // end sees EOF).
  void ExpectRejected(RejectReason reason, int client, const std::vector<int>& pipe_reads,
                      const std::string& why) {
    const uint64_t before_handoffs = server_->counters().handoffs.load();
    ASSERT_TRUE(WaitFor([&] { return server_->counters().Rejected(reason) == 1; }))
        << "no rejection for " << RejectReasonName(reason)
        << "; total rejected: " << server_->counters().RejectedTotal();
    EXPECT_EQ(server_->counters().RejectedTotal(), 1u);
    auto lines = RejectionLines();
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_TRUE(
        absl::StartsWith(lines[0], absl::StrCat("handoff rejected: peer pid ", getpid(), ": ")))
        << lines[0];
    EXPECT_TRUE(absl::StrContains(lines[0], why)) << lines[0] << " lacks " << why;
    if (client >= 0) {
      EXPECT_TRUE(SeesEof(client)) << "connection not closed";
    }
    for (int r : pipe_reads) EXPECT_TRUE(SeesEof(r)) << "received fd not closed";
    EXPECT_EQ(HandoffCount(), 0u);
    EXPECT_EQ(server_->counters().handoffs.load(), before_handoffs);
    EXPECT_EQ(server_->pending_connections(), 0u);
  }

  // A complete, valid runc handoff of a real listener; returns the handoff.
  Handoff HandOff(const std::string& id, const std::string& message = "") {
    auto child = SpawnIdleChild();
    EXPECT_TRUE(child.ok()) << child.status();
    if (!child.ok()) return Handoff();
    UniqueFd listener = child->TakeListener();
    UniqueFd c = Connect(path_);
    EXPECT_TRUE(Send(c.get(), message.empty() ? RuncMessage(id) : message, {listener.get()}));
    listener.reset();
    Handoff h = WaitHandoff(id);
    EXPECT_TRUE(h.listener.valid()) << "no handoff for " << id;
    if (h.listener) {
      EXPECT_TRUE(CheckIsListener(h.listener.get()).ok());
    }
    EXPECT_TRUE(SeesEof(c.get())) << "server kept the connection open after the handoff";
    return h;
  }

  void ExpectValidHandoffStillWorks() { HandOff("after-rejection"); }

  std::string dir_, path_;
  std::unique_ptr<HandoffServer> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Handoff> handoffs_;
};

// ---------------------------------------------------------------- success

TEST_F(HandoffServerTest, RuncHandoffDeliversAWorkingListener) {
  StartServer();
  // The child's getppid() traps; it exits 0 only if our reply (4242) arrives.
  auto child =
      TrappedChild::Spawn({"getppid"}, [] { return syscall(SYS_getppid) == 4242 ? 0 : 1; });
  ASSERT_TRUE(child.ok()) << child.status();
  UniqueFd listener = child->TakeListener();
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), RuncMessage("runc-1", child->pid()), {listener.get()}));
  listener.reset();  // the server's copy is now the only one

  Handoff h = WaitHandoff("runc-1");
  ASSERT_TRUE(h.listener.valid());
  EXPECT_EQ(h.container.runtime, "runc");
  EXPECT_EQ(h.container.init_pid, child->pid());
  EXPECT_EQ(h.container.bundle, "/bundles/runc-1");
  EXPECT_EQ(h.container.metadata, "m");
  EXPECT_EQ(h.container.pod_namespace, "ns1");
  EXPECT_EQ(h.peer_pid, getpid());
  EXPECT_EQ(h.peer_uid, getuid());
  EXPECT_TRUE(SeesEof(c.get()));
  EXPECT_EQ(server_->counters().handoffs.load(), 1u);
  EXPECT_EQ(server_->counters().RejectedTotal(), 0u);
  EXPECT_TRUE(RejectionLines().empty());

  child->Start();
  pollfd p{h.listener.get(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  seccomp_notif n;
  ASSERT_TRUE(DefaultUnotify().Recv(h.listener.get(), &n).ok());
  seccomp_notif_resp r{};
  r.id = n.id;
  r.val = 4242;
  ASSERT_TRUE(DefaultUnotify().Send(h.listener.get(), r).ok());
  EXPECT_EQ(WaitChild(*child), 0);
}

TEST_F(HandoffServerTest, CrunConnectsWaitsThenSendsPrettyJson) {
  StartServer();
  auto child = SpawnIdleChild();
  ASSERT_TRUE(child.ok()) << child.status();
  UniqueFd listener = child->TakeListener();
  UniqueFd c = Connect(path_);
  // crun connects at create and sends at start, seconds later: no error.
  ASSERT_TRUE(WaitFor([&] { return server_->pending_connections() == 1; }));
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(StillOpen(c.get()));
  EXPECT_EQ(server_->counters().RejectedTotal(), 0u);
  ASSERT_TRUE(Send(c.get(), CrunMessage("crun-1"), {listener.get()}));
  listener.reset();
  Handoff h = WaitHandoff("crun-1");
  ASSERT_TRUE(h.listener.valid());
  EXPECT_EQ(h.container.runtime, "crun");
  EXPECT_EQ(h.container.init_pid, 4321);
  EXPECT_EQ(h.container.metadata, "");
  EXPECT_TRUE(SeesEof(c.get()));
  EXPECT_TRUE(RejectionLines().empty());
}

TEST_F(HandoffServerTest, SlowSenderInPiecesWithFdFirst) {
  StartServer();
  auto child = SpawnIdleChild();
  ASSERT_TRUE(child.ok()) << child.status();
  UniqueFd listener = child->TakeListener();
  UniqueFd c = Connect(path_);
  const std::string msg = RuncMessage("slow-1");
  ASSERT_TRUE(Send(c.get(), msg.substr(0, 7), {listener.get()}));
  listener.reset();
  for (size_t off = 7; off < msg.size(); off += 40) {
    std::this_thread::sleep_for(10ms);
    ASSERT_EQ(HandoffCount(), 0u);
    ASSERT_TRUE(Send(c.get(), msg.substr(off, 40)));
  }
  Handoff h = WaitHandoff("slow-1");
  EXPECT_TRUE(h.listener.valid());
  EXPECT_TRUE(RejectionLines().empty());
}

// ---------------------------------------------------------------- rejections

TEST_F(HandoffServerTest, NotJsonIsRejected) {
  StartServer();
  Pipe p = MakePipe();
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), "GET / HTTP/1.0\r\n\r\n", {p.write.get()}));
  p.write.reset();
  ExpectRejected(RejectReason::kMalformedJson, c.get(), {p.read.get()},
                 "does not start with a JSON object");
  ExpectValidHandoffStillWorks();
}

TEST_F(HandoffServerTest, InvalidJsonInsideBracesIsRejected) {
  StartServer();
  Pipe p = MakePipe();
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), R"({"ociVersion": nope, "x": [1,2}})", {p.write.get()}));
  p.write.reset();
  ExpectRejected(RejectReason::kMalformedJson, c.get(), {p.read.get()}, "not valid JSON");
  ExpectValidHandoffStillWorks();
}

TEST_F(HandoffServerTest, TruncatedJsonThenCloseIsRejected) {
  StartServer();
  Pipe p = MakePipe();
  UniqueFd c = Connect(path_);
  const std::string msg = RuncMessage("trunc");
  ASSERT_TRUE(Send(c.get(), msg.substr(0, msg.size() / 2), {p.write.get()}));
  p.write.reset();
  shutdown(c.get(), SHUT_WR);  // EOF for the server; we can still see its close
  ExpectRejected(RejectReason::kClosedEarly, c.get(), {p.read.get()},
                 absl::StrCat("connection closed after ", msg.size() / 2, " bytes"));
  ExpectValidHandoffStillWorks();
}

TEST_F(HandoffServerTest, OversizeMessageIsRejected) {
  HandoffServer::Options o = DefaultOptions();
  o.max_message_bytes = 64 * 1024;
  StartServer(o);
  Pipe p = MakePipe();
  UniqueFd c = Connect(path_);
  std::string big = R"({"ociVersion":"1.0.2-dev","pad":")" + std::string(70 * 1024, 'x') + R"("})";
  // The fd rides on the first bytes; the server may close before the last
  // ones are queued, so a short send is fine here.
  (void)Send(c.get(), big, {p.write.get()});
  p.write.reset();
  ExpectRejected(RejectReason::kTooLarge, c.get(), {p.read.get()}, "larger than 65536 bytes");
  ExpectValidHandoffStillWorks();
}

TEST_F(HandoffServerTest, ZeroFdsIsRejected) {
  StartServer();
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), RuncMessage("nofd")));
  ExpectRejected(RejectReason::kFdCount, c.get(), {}, "received 0");
  ExpectValidHandoffStillWorks();
}

TEST_F(HandoffServerTest, TwoFdsAreRejectedAndBothClosed) {
  StartServer();
  Pipe a = MakePipe();
  Pipe b = MakePipe();
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), RuncMessage("twofd", 1234, R"(["seccompFd","otherFd"])"),
                   {a.write.get(), b.write.get()}));
  a.write.reset();
  b.write.reset();
  ExpectRejected(RejectReason::kFdCount, c.get(), {a.read.get(), b.read.get()}, "received 2");
  ExpectValidHandoffStillWorks();
}

TEST_F(HandoffServerTest, TooManyFdsTruncatedControlAllClosed) {
  StartServer();
  std::vector<Pipe> pipes;
  std::vector<int> writes, reads;
  for (int i = 0; i < 12; ++i) {
    pipes.push_back(MakePipe());
    writes.push_back(pipes.back().write.get());
    reads.push_back(pipes.back().read.get());
  }
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), RuncMessage("manyfd"), writes));
  for (auto& p : pipes) p.write.reset();
  ExpectRejected(RejectReason::kControlTruncated, c.get(), reads, "ancillary data truncated");
  ExpectValidHandoffStillWorks();
}

TEST_F(HandoffServerTest, NonSeccompFdIsRejected) {
  StartServer();
  Pipe p = MakePipe();
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), RuncMessage("pipefd"), {p.write.get()}));
  p.write.reset();
  ExpectRejected(RejectReason::kNotListener, c.get(), {p.read.get()}, "not a seccomp listener");
  ExpectValidHandoffStillWorks();
}

TEST_F(HandoffServerTest, WrongFdNamesRejectedAndRealListenerClosed) {
  StartServer();
  // Once every copy of the listener is closed the child's trapped getppid()
  // fails with ENOSYS: that proves the server closed the fd it received.
  auto child = TrappedChild::Spawn(
      {"getppid"}, [] { return (syscall(SYS_getppid) == -1 && errno == ENOSYS) ? 0 : 1; });
  ASSERT_TRUE(child.ok()) << child.status();
  UniqueFd listener = child->TakeListener();
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), RuncMessage("badnames", 1234, R"(["listenerFd"])"), {listener.get()}));
  listener.reset();
  ExpectRejected(RejectReason::kFdNames, c.get(), {}, "exactly one \"seccompFd\"");
  child->Start();
  EXPECT_EQ(WaitChild(*child), 0) << "the rejected listener is still open somewhere";
  ExpectValidHandoffStillWorks();
}

TEST_F(HandoffServerTest, MissingFieldsAndWrongTypesAreRejected) {
  StartServer();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"ociVersion":"1.0.2-dev","fds":["seccompFd"],"pid":5})", "missing field state"},
      {R"({"ociVersion":"1.0.2-dev","fds":["seccompFd"],"pid":"5","state":{}})",
       "field pid is not an integer"},
      {R"({"ociVersion":"1.0.2-dev","fds":["seccompFd"],"pid":5,)"
       R"("state":{"id":"","pid":5,"bundle":"/b","status":"creating"}})",
       "field state.id is empty"},
      {R"({"ociVersion":1,"fds":["seccompFd"],"pid":5,"state":{}})",
       "field ociVersion is not a string"},
  };
  uint64_t expected = 0;
  for (const auto& [msg, why] : cases) {
    Capture()->Clear();
    Pipe p = MakePipe();
    UniqueFd c = Connect(path_);
    ASSERT_TRUE(Send(c.get(), msg, {p.write.get()}));
    p.write.reset();
    ++expected;
    ASSERT_TRUE(WaitFor([&] {
      return server_->counters().Rejected(RejectReason::kInvalidMessage) == expected;
    })) << why;
    auto lines = RejectionLines();
    ASSERT_EQ(lines.size(), 1u) << why;
    EXPECT_TRUE(absl::StrContains(lines[0], why)) << lines[0];
    EXPECT_TRUE(SeesEof(c.get())) << why;
    EXPECT_TRUE(SeesEof(p.read.get())) << why;
  }
  EXPECT_EQ(HandoffCount(), 0u);
  EXPECT_EQ(server_->counters().RejectedTotal(), expected);
  ExpectValidHandoffStillWorks();
}

TEST_F(HandoffServerTest, TrailingGarbageAfterMessageIsRejected) {
  StartServer();
  auto child = SpawnIdleChild();
  ASSERT_TRUE(child.ok()) << child.status();
  UniqueFd listener = child->TakeListener();
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), RuncMessage("garbage") + "\n{\"x\":1}", {listener.get()}));
  listener.reset();
  ExpectRejected(RejectReason::kMalformedJson, c.get(), {}, "unexpected data after");
}

TEST_F(HandoffServerTest, LogLineCannotBeForgedWithControlCharacters) {
  StartServer();
  Pipe p = MakePipe();
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), "{\"a\":\n\"x\" \x01 }", {p.write.get()}));
  p.write.reset();
  ExpectRejected(RejectReason::kMalformedJson, c.get(), {p.read.get()}, "not valid JSON");
  for (const auto& line : Capture()->Lines()) {
    for (char ch : line) EXPECT_FALSE(static_cast<unsigned char>(ch) < 0x20) << line;
  }
}

TEST_F(HandoffServerTest, PeerUidNotInAllowedListIsRejected) {
  HandoffServer::Options o = DefaultOptions();
  o.allowed_uids = {12345};
  StartServer(o);
  Pipe p = MakePipe();
  UniqueFd c = Connect(path_);
  // The server refuses at accept, before reading, so this send may already
  // meet a closed connection (EPIPE); either way the fd must not survive.
  (void)Send(c.get(), RuncMessage("uid"), {p.write.get()});
  p.write.reset();
  ExpectRejected(RejectReason::kPeerUid, c.get(), {p.read.get()},
                 absl::StrCat("peer uid ", getuid(), " is not allowed"));
}

TEST_F(HandoffServerTest, UnprivilegedPeerRejectedThenRootSucceeds) {
  // Runs in //agent/handoff:server_peer_uid_test (local; README command 2
  // runs as root): cannot run, so fails.
  ASSERT_EQ(geteuid(), 0u) << "needs root to setuid(65534)";
  StartServer();                            // allowed_uids = {0}
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);  // only the socket's own mode stands in the way
  Pipe p = MakePipe();
  const std::string msg = RuncMessage("nobody");
  const std::string path = path_;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Raw calls only after fork in a threaded process.
    ::close(p.read.get());
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path.c_str(), path.size());
    // The socket is 0600 root: an unprivileged peer cannot even connect.
    if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) _exit(11);
    _exit(errno == EACCES ? 0 : 12);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  // 10: e.g. Bazel's linux-sandbox, a user namespace that maps only root
  // (server_test filters this case out; server_peer_uid_test runs it).
  ASSERT_NE(WEXITSTATUS(status), 10)
      << "setuid(65534) fails here; run //agent/handoff:server_peer_uid_test (local)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "unprivileged connect was not refused with EACCES";

  // Now past the file mode (chmod 0666 as an operator might): SO_PEERCRED
  // still refuses it.
  ASSERT_EQ(chmod(path_.c_str(), 0666), 0);
  pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(p.read.get());
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path.c_str(), path.size());
    if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(13);
    int fd = p.write.get();
    char ctrl[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{const_cast<char*>(msg.data()), msg.size()};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = sizeof(ctrl);
    cmsghdr* cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    // Refused at accept: the send may already see the closed connection.
    if (sendmsg(s, &m, MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size()) && errno != EPIPE &&
        errno != ECONNRESET) {
      _exit(14);
    }
    // Wait until the server closes the connection, then exit.
    // EOF, or ECONNRESET: the server closed with our bytes unread.
    char b;
    ssize_t n = read(s, &b, 1);
    _exit((n == 0 || (n < 0 && errno == ECONNRESET)) ? 0 : 15);
  }
  p.write.reset();
  ASSERT_TRUE(WaitFor([&] { return server_->counters().Rejected(RejectReason::kPeerUid) == 1; }));
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "server did not close the unprivileged connection";
  EXPECT_TRUE(SeesEof(p.read.get())) << "the fd sent by the unprivileged peer was not closed";
  auto lines = RejectionLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(lines[0], absl::StrCat("handoff rejected: peer pid ", pid, ": ")))
      << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "peer uid 65534 is not allowed")) << lines[0];
  EXPECT_EQ(HandoffCount(), 0u);
  ExpectValidHandoffStillWorks();
}

// ---------------------------------------------------------------- isolation

TEST_F(HandoffServerTest, IdleConnectionDoesNotBlockAnotherHandoff) {
  StartServer();
  auto child = SpawnIdleChild();
  ASSERT_TRUE(child.ok()) << child.status();
  UniqueFd listener = child->TakeListener();
  UniqueFd idle = Connect(path_);
  ASSERT_TRUE(Send(idle.get(), "{\"ociVersion\":"));  // starts, then goes quiet
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), RuncMessage("beside-idle"), {listener.get()}));
  listener.reset();
  Handoff h = WaitHandoff("beside-idle");
  EXPECT_TRUE(h.listener.valid());
  EXPECT_EQ(server_->pending_connections(), 1u);
  EXPECT_TRUE(StillOpen(idle.get())) << "the idle connection must not be dropped";
  EXPECT_EQ(server_->counters().RejectedTotal(), 0u);
}

TEST_F(HandoffServerTest, ConnectionClosedMidMessageDoesNotDisturbAnother) {
  StartServer();
  auto child = SpawnIdleChild();
  ASSERT_TRUE(child.ok()) << child.status();
  UniqueFd listener = child->TakeListener();
  Pipe p = MakePipe();
  UniqueFd a = Connect(path_);
  UniqueFd b = Connect(path_);
  const std::string good = RuncMessage("b-side");
  ASSERT_TRUE(Send(a.get(), RuncMessage("a-side").substr(0, 30), {p.write.get()}));
  p.write.reset();
  ASSERT_TRUE(Send(b.get(), good.substr(0, 30), {listener.get()}));
  listener.reset();
  a.reset();  // A dies mid-message
  ASSERT_TRUE(
      WaitFor([&] { return server_->counters().Rejected(RejectReason::kClosedEarly) == 1; }));
  EXPECT_TRUE(SeesEof(p.read.get()));
  ASSERT_TRUE(Send(b.get(), good.substr(30)));
  Handoff h = WaitHandoff("b-side");
  EXPECT_TRUE(h.listener.valid());
  EXPECT_EQ(RejectionLines().size(), 1u);
}

TEST_F(HandoffServerTest, FloodOfConnectionsEvictsOldestAndHandoffStillWorks) {
  HandoffServer::Options o = DefaultOptions();
  o.max_pending = 16;
  StartServer(o);
  auto child = SpawnIdleChild();
  ASSERT_TRUE(child.ok()) << child.status();
  UniqueFd listener = child->TakeListener();
  std::vector<UniqueFd> flood;
  for (int i = 0; i < 40; ++i) flood.push_back(Connect(path_));
  ASSERT_TRUE(WaitFor([&] { return server_->counters().evicted_pending.load() == 24; }))
      << server_->counters().evicted_pending.load();
  EXPECT_EQ(server_->counters().connections.load(), 40u);
  EXPECT_EQ(server_->pending_connections(), 16u);
  // Oldest ones closed, newest ones still open.
  EXPECT_TRUE(SeesEof(flood.front().get()));
  EXPECT_TRUE(StillOpen(flood.back().get()));
  size_t eviction_lines = 0;
  for (const auto& l : RejectionLines()) {
    if (absl::StrContains(l, "more than 16 pending connections")) ++eviction_lines;
  }
  EXPECT_EQ(eviction_lines, 24u);

  UniqueFd c = Connect(path_);
  ASSERT_TRUE(Send(c.get(), RuncMessage("after-flood"), {listener.get()}));
  listener.reset();
  Handoff h = WaitHandoff("after-flood");
  EXPECT_TRUE(h.listener.valid());
}

TEST_F(HandoffServerTest, LongIdleConnectionIsDroppedWithInfoLine) {
  HandoffServer::Options o = DefaultOptions();
  o.idle_limit = absl::Milliseconds(300);
  StartServer(o);
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(WaitFor([&] { return server_->pending_connections() == 1; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(StillOpen(c.get())) << "dropped before the idle limit";
  EXPECT_TRUE(SeesEof(c.get()));
  EXPECT_TRUE(WaitFor([&] { return server_->counters().dropped_idle.load() == 1; }));
  EXPECT_EQ(server_->counters().RejectedTotal(), 0u);
  EXPECT_TRUE(RejectionLines().empty());
  bool info = false;
  for (const auto& l : Capture()->Lines()) info |= absl::StrContains(l, "idle for 300ms");
  EXPECT_TRUE(info);
}

// ---------------------------------------------------------------- socket file

TEST_F(HandoffServerTest, CreatesParentDirAndSocket0600AndUnlinksOnStop) {
  path_ = dir_ + "/run/seccomp-agent/agent.sock";
  StartServer();
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(stat((dir_ + "/run/seccomp-agent").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(server_->socket_path(), path_);
  server_.reset();
  EXPECT_NE(access(path_.c_str(), F_OK), 0) << "socket file left behind";
}

TEST_F(HandoffServerTest, StaleSocketFileIsReplaced) {
  {
    UniqueFd s(socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }  // closed without unlink: a crashed agent's leftover
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  StartServer();
  HandOff("on-replaced-socket");
}

TEST_F(HandoffServerTest, LiveSocketIsRefusedAndKeepsWorking) {
  StartServer();
  HandoffServer::Options o = DefaultOptions();
  auto second = HandoffServer::Start(o, [](Handoff) {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(second.status().message(), "another agent is listening on " + path_);
  // The first server's socket survived the attempt (the probe connection
  // shows up there as one closed_early rejection).
  ASSERT_TRUE(WaitFor([&] { return server_->counters().connections.load() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return server_->pending_connections() == 0; }));
  HandOff("still-first");
}

TEST_F(HandoffServerTest, NonSocketFileAtPathIsNotReplaced) {
  {
    UniqueFd f(open(path_.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    ASSERT_TRUE(f.valid());
  }
  auto s = HandoffServer::Start(DefaultOptions(), [](Handoff) {});
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::StrContains(s.status().message(), "is not a socket")) << s.status();
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(HandoffServerTest, AdoptsAListeningSocketAndLeavesItsFile) {
  UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(s.get(), 16), 0);
  HandoffServer::Options o;
  o.socket_path = "/nonexistent/ignored.sock";
  o.adopt_fd = s.release();
  StartServer(o);
  EXPECT_EQ(server_->socket_path(), path_);
  HandOff("adopted");
  server_.reset();
  EXPECT_EQ(access(path_.c_str(), F_OK), 0) << "an adopted socket's file belongs to its creator";
}

TEST_F(HandoffServerTest, AdoptRefusesANonListeningSocket) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd other(sv[1]);
  HandoffServer::Options o;
  o.adopt_fd = sv[0];
  auto s = HandoffServer::Start(o, [](Handoff) {});
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::StrContains(s.status().message(), "not a listening")) << s.status();
  // Ownership was taken: the fd is closed, so the peer sees EOF.
  EXPECT_TRUE(SeesEof(other.get()));
}

}  // namespace
}  // namespace seccomp_agent
