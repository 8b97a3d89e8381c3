// The example plugins, run as real processes (C++ binary and Python 3 with
// python3-grpcio), answering the dispatcher over unix sockets, unary and
// stream. Also: a plugin process that is stopped and then killed while a
// decision is pending.
#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/plugin/dispatcher.h"
#include "agent/plugin/testing/test_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::plugin {
namespace {

using testing::Container;
using testing::DecideSync;
using testing::OpenatEvent;
using testing::SocketPath;
using testing::Timed;
using Kind = PluginResult::Kind;
using namespace std::chrono_literals;

std::string Runfile(const std::string& rel) {
  const char* dir = getenv("TEST_SRCDIR");
  return absl::StrCat(dir != nullptr ? dir : ".", "/seccomp_agent/", rel);
}

// A child process serving a plugin on a unix socket; killed on destruction.
class PluginProcess {
 public:
  PluginProcess(std::vector<std::string> argv, std::string socket, std::string stdout_file = "")
      : argv_(std::move(argv)), socket_(std::move(socket)), stdout_file_(std::move(stdout_file)) {}
  ~PluginProcess() {
    Kill(SIGKILL);
    unlink(socket_.c_str());
  }

  // Starts and waits (up to 15 s) for the socket to appear.
  bool Start() {
    unlink(socket_.c_str());
    pid_ = fork();
    if (pid_ == 0) {
      if (!stdout_file_.empty()) {
        FILE* f = freopen(stdout_file_.c_str(), "w", stdout);
        (void)f;
      }
      std::vector<char*> args;
      for (std::string& a : argv_) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    const auto end = std::chrono::steady_clock::now() + 15s;
    struct stat st;
    while (std::chrono::steady_clock::now() < end) {
      // The file appears at bind(); a connect() succeeds once it listens.
      if (stat(socket_.c_str(), &st) == 0 && Connectable()) return true;
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  bool Connectable() const {
    sockaddr_un sa = {};
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", socket_.c_str());
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
    close(fd);
    return ok;
  }
  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }
  // After SIGSTOP: true once every thread of the child is stopped ("T" in
  // /proc/PID/task/TID/stat), so nothing it has not read yet gets answered.
  bool WaitStopped() {
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < end) {
      bool all = true;
      DIR* dir = opendir(absl::StrCat("/proc/", pid_, "/task").c_str());
      if (dir == nullptr) return false;
      while (dirent* e = readdir(dir)) {
        if (e->d_name[0] == '.') continue;
        std::ifstream in(absl::StrCat("/proc/", pid_, "/task/", e->d_name, "/stat"));
        std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const size_t close = stat.rfind(')');
        if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'T' &&
            stat[close + 2] != 't') {
          all = false;
        }
      }
      closedir(dir);
      if (all) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    kill(pid_, SIGCONT);  // a stopped process acts on SIGTERM only once continued
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::vector<std::string> argv_;
  std::string socket_;
  std::string stdout_file_;
  pid_t pid_ = -1;
};

std::unique_ptr<PluginDispatcher> Dispatcher(const std::string& socket, bool stream,
                                             uint32_t timeout_ms = 2000) {
  v1::PluginConfig pc;
  pc.set_name("ex");
  pc.set_address("unix://" + socket);
  pc.set_timeout_ms(timeout_ms);
  pc.set_stream(stream);
  DispatcherOptions o;
  o.redirect_roots = {"/srv/redirect"};
  o.health_interval = absl::Milliseconds(100);
  o.initial_backoff = absl::Milliseconds(50);
  o.max_backoff = absl::Milliseconds(200);
  auto d = PluginDispatcher::Create({pc}, o);
  EXPECT_TRUE(d.ok()) << d.status();
  return std::move(*d);
}

class ExamplesTest : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(UnaryAndStream, ExamplesTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "Stream" : "Unary";
                         });

TEST_P(ExamplesTest, RedirectByLabelCpp) {
  const std::string sock = SocketPath("rbl");
  PluginProcess p(
      {Runfile("agent/plugin/examples/redirect_by_label/redirect_by_label"),
       "--listen=unix://" + sock, "--label=example.com/redirect=yes",
       "--map=/etc/app.conf=/srv/redirect/app.conf", "--prefix=/var/data/=/srv/redirect/data/"},
      sock);
  ASSERT_TRUE(p.Start());
  auto d = Dispatcher(sock, GetParam());
  ContainerInfo labelled = Container("labelled", {{"example.com/redirect", "yes"}});
  ContainerInfo wrong_value = Container("wrong", {{"example.com/redirect", "no"}});
  ContainerInfo plain = Container("plain");

  Timed t = DecideSync(*d, "ex", OpenatEvent(&labelled, "/etc/app.conf"));
  ASSERT_EQ(t.result.kind, Kind::kAction) << t.result.error;
  ASSERT_TRUE(t.result.action.has_redirect_open());
  EXPECT_EQ(t.result.action.redirect_open().exact().at("/etc/app.conf"), "/srv/redirect/app.conf");

  t = DecideSync(*d, "ex", OpenatEvent(&labelled, "/var/data/x/y"));
  ASSERT_EQ(t.result.kind, Kind::kAction) << t.result.error;
  EXPECT_EQ(t.result.action.redirect_open().prefix().at("/var/data/"), "/srv/redirect/data/");

  t = DecideSync(*d, "ex", OpenatEvent(&labelled, "/etc/hosts"));
  ASSERT_EQ(t.result.kind, Kind::kAction) << t.result.error;
  EXPECT_TRUE(t.result.action.has_allow()) << "labelled, unmapped path";

  for (const ContainerInfo* c : {&wrong_value, &plain}) {
    t = DecideSync(*d, "ex", OpenatEvent(c, "/etc/app.conf"));
    ASSERT_EQ(t.result.kind, Kind::kAction) << t.result.error;
    EXPECT_TRUE(t.result.action.has_allow()) << c->id;
  }
  // The example's hints: an unlabelled container is cached per syscall.
  t = DecideSync(*d, "ex", OpenatEvent(&plain, "/anything"));
  EXPECT_TRUE(t.result.from_cache);
  EXPECT_EQ(d->StatsFor("ex")->rpcs, 5u);
}

TEST_P(ExamplesTest, AuditPython) {
  const std::string sock = SocketPath("apy");
  const std::string log = absl::StrCat(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp",
                                       "/audit_", GetParam() ? "stream" : "unary", ".jsonl");
  PluginProcess p({Runfile("agent/plugin/examples/audit_py/audit_py"), "--listen=unix://" + sock,
                   "--deny_syscalls=mkdirat", "--deny_paths=/etc/shadow,/root/*", "--errno=EACCES"},
                  sock, log);
  ASSERT_TRUE(p.Start()) << "python3-grpcio missing? see agent/plugin/examples/audit_py/README.md";
  auto d = Dispatcher(sock, GetParam());
  ContainerInfo c = Container("c1");

  Timed t = DecideSync(*d, "ex", OpenatEvent(&c, "/etc/shadow"));
  ASSERT_EQ(t.result.kind, Kind::kAction) << t.result.error;
  EXPECT_EQ(t.result.action.deny().errno_code(), 13);  // EACCES
  t = DecideSync(*d, "ex", OpenatEvent(&c, "/root/.ssh/id_rsa"));
  ASSERT_EQ(t.result.kind, Kind::kAction) << t.result.error;
  EXPECT_TRUE(t.result.action.has_deny());
  t = DecideSync(*d, "ex", OpenatEvent(&c, "/etc/passwd"));
  ASSERT_EQ(t.result.kind, Kind::kAction) << t.result.error;
  EXPECT_TRUE(t.result.action.has_allow());
  SyscallEvent mk = OpenatEvent(&c, "/tmp/newdir");
  mk.syscall = "mkdirat";
  mk.nr = SYS_mkdirat;
  t = DecideSync(*d, "ex", mk);
  ASSERT_EQ(t.result.kind, Kind::kAction) << t.result.error;
  EXPECT_EQ(t.result.action.deny().errno_code(), 13);

  // One JSON line per decision on stdout.
  p.Kill(SIGTERM);
  std::ifstream in(log);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["path"], "/etc/shadow");
  EXPECT_EQ(lines[0]["decision"], "deny");
  EXPECT_EQ(lines[2]["path"], "/etc/passwd");
  EXPECT_EQ(lines[2]["decision"], "allow");
  EXPECT_EQ(lines[2]["container"], "c1");
  EXPECT_EQ(lines[3]["syscall"], "mkdirat");
}

// The plugin process is stopped (SIGSTOP: wedged), then killed, with a
// decision pending: the decision fails as soon as the connection drops, long
// before its deadline; a restarted plugin answers again.
TEST_P(ExamplesTest, KilledPluginProcess) {
  const std::string sock = SocketPath("kill");
  std::vector<std::string> argv = {
      Runfile("agent/plugin/examples/redirect_by_label/redirect_by_label"),
      "--listen=unix://" + sock, "--cache_ttl_ms=0"};
  auto p = std::make_unique<PluginProcess>(argv, sock);
  ASSERT_TRUE(p->Start());
  auto d = Dispatcher(sock, GetParam(), 3000);
  ContainerInfo c = Container("c");
  ASSERT_EQ(DecideSync(*d, "ex", OpenatEvent(&c, "/a")).result.kind, Kind::kAction);

  p->Signal(SIGSTOP);
  ASSERT_TRUE(p->WaitStopped());
  auto done = std::make_shared<std::promise<Timed>>();
  const auto start = std::chrono::steady_clock::now();
  d->Decide("ex", OpenatEvent(&c, "/b"), [done, start](PluginResult r) {
    done->set_value(Timed{std::move(r), std::chrono::steady_clock::now() - start});
  });
  std::this_thread::sleep_for(200ms);
  p->Kill(SIGKILL);
  Timed t = done->get_future().get();
  EXPECT_EQ(t.result.kind, Kind::kError);
  EXPECT_EQ(t.result.error_kind, ErrorKind::kUnavailable) << t.result.error;
  EXPECT_LT(t.ms(), 1500) << "must not wait for the 3 s deadline";

  p = std::make_unique<PluginProcess>(argv, sock);
  ASSERT_TRUE(p->Start());
  const auto end = std::chrono::steady_clock::now() + 5s;
  bool ok = false;
  while (!ok && std::chrono::steady_clock::now() < end) {
    ok = DecideSync(*d, "ex", OpenatEvent(&c, "/c")).result.kind == Kind::kAction;
    if (!ok) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(ok) << "the dispatcher reconnects to the restarted plugin";
}

}  // namespace
}  // namespace seccomp_agent::plugin
