// systemd fd-store mode, end to end with the real agent binary.
//
// There is no systemd as PID 1 on the build machines (PID 1 is a container
// init, so `systemd-run` has no manager to talk to). A `systemd --user`
// manager can be started by hand in a private mount namespace (done once,
// see agent/holder/README.md), but at start it moves every process of the
// machine's root cgroup into its init.scope, so no test does that. Here
// systemd's side is a STAND-IN written from the documented protocol, not
// systemd itself:
//   - sd_notify(3): a unix datagram socket as NOTIFY_SOCKET with SO_PASSCRED;
//     only the main pid is heard (NotifyAccess=main). "FDSTORE=1" stores the
//     SCM_RIGHTS fds under FDNAME= ("stored" when missing or invalid);
//     "FDSTOREREMOVE=1" drops every fd of that FDNAME; fds sent without
//     FDSTORE=1 are closed; a stored fd that reports POLLHUP/POLLERR is
//     dropped; an fd that is the same open file as a stored one is not stored
//     twice (kcmp, like systemd's same_fd()); FileDescriptorStoreMax= caps
//     the store.
//   - sd_listen_fds_with_names(3): the next agent is exec'd with the socket
//     unit's listening socket first (name "seccomp-agent.socket") and the
//     store after it, from fd 3, LISTEN_FDS=n, LISTEN_FDNAMES=a:b:..., and
//     LISTEN_PID set in the child after fork (its own pid). The store keeps
//     its fds when it passes them (systemd does not consume them at start).
// Not covered (real systemd behaviour this stand-in does not model): the
// unit state machine (Restart=on-failure timing, `systemctl stop` releasing
// the store, FileDescriptorStorePreserve= in systemd >= 254), KillMode and
// cgroup cleanup, the fd-store order systemd uses (LIST_PREPEND: newest
// first; the agent does not depend on order), daemon-reexec / serialization
// of the store, the exact log messages and rate limits of PID 1, and
// NotifyAccess=all/exec. The socket unit's socket is created by the test.
#include "agent/holder/fdstore.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kcmp.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/fd.h"
#include "agent/holder/holder.h"
#include "agent/seccomp/filter_util.h"
#include "agent/seccomp/unotify.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "agent/testing/wait.h"

extern char** environ;

namespace seccomp_agent::holder {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool SameFile(int a, int b) { return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0; }

// ------------------------------------------------ stand-in for systemd's side

class FakeServiceManager {
 public:
  struct Message {
    pid_t pid;
    std::string text;
    int fds;
  };

  explicit FakeServiceManager(const std::string& path, size_t store_max = 4096)
      : path_(path), max_(store_max) {
    sock_.reset(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    ok_ = sock_ && bind(sock_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    int one = 1;
    ok_ = ok_ && setsockopt(sock_.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0;
    stop_.reset(eventfd(0, EFD_CLOEXEC));
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeServiceManager() {
    uint64_t one = 1;
    (void)!write(stop_.get(), &one, sizeof(one));
    thread_.join();
  }
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }
  void set_main_pid(pid_t pid) { main_pid_ = pid; }

  std::vector<Message> Messages() {
    std::lock_guard<std::mutex> l(mu_);
    return messages_;
  }
  // Messages from `pid` (0: any) whose text contains every needle.
  int Count(const std::vector<std::string>& needles, pid_t pid = 0) {
    int n = 0;
    for (const auto& m : Messages()) {
      if (pid != 0 && m.pid != pid) continue;
      bool all = true;
      for (const auto& s : needles) all = all && absl::StrContains(m.text, s);
      n += all;
    }
    return n;
  }
  int refused() const { return refused_.load(); }

  std::vector<std::string> StoredNames() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<std::string> out;
    for (const auto& e : store_) out.push_back(e.name);
    return out;
  }
  // What the store would pass at the next start: a dup of every fd, in
  // store order, with its name. The store keeps its own copies.
  std::vector<NamedFd> DupStore() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<NamedFd> out;
    for (const auto& e : store_)
      out.push_back({e.name, UniqueFd(fcntl(e.fd.get(), F_DUPFD_CLOEXEC, 3))});
    return out;
  }
  // Puts an fd in the store directly (state left by an earlier agent).
  void Inject(const std::string& name, UniqueFd fd) {
    std::lock_guard<std::mutex> l(mu_);
    store_.push_back({name, std::move(fd)});
  }

 private:
  struct Entry {
    std::string name;
    UniqueFd fd;
  };

  void Loop() {
    for (;;) {
      std::vector<pollfd> p = {{stop_.get(), POLLIN, 0}, {sock_.get(), POLLIN, 0}};
      {
        std::lock_guard<std::mutex> l(mu_);
        for (const auto& e : store_) p.push_back({e.fd.get(), 0, 0});
      }
      int n = poll(p.data(), p.size(), 100);
      if (n <= 0) continue;
      if (p[0].revents & POLLIN) return;
      if (p[1].revents & POLLIN) Receive();
      std::lock_guard<std::mutex> l(mu_);
      for (size_t i = 2; i < p.size(); ++i) {
        if ((p[i].revents & (POLLHUP | POLLERR)) == 0) continue;
        for (auto it = store_.begin(); it != store_.end(); ++it) {
          if (it->fd.get() == p[i].fd) {  // systemd: "fd store fd hung up, removing"
            store_.erase(it);
            break;
          }
        }
      }
    }
  }

  void Receive() {
    char buf[8192];
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 253) + CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof(buf) - 1};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof(cbuf);
    ssize_t len = recvmsg(sock_.get(), &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (len < 0) return;
    std::vector<UniqueFd> fds;
    pid_t pid = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type == SCM_RIGHTS) {
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; ++i) {
          int f;
          memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          fds.emplace_back(f);
        }
      } else if (c->cmsg_type == SCM_CREDENTIALS) {
        ucred u;
        memcpy(&u, CMSG_DATA(c), sizeof(u));
        pid = u.pid;
      }
    }
    std::string text(buf, len);
    std::lock_guard<std::mutex> l(mu_);
    if (pid == 0 || pid != main_pid_.load()) {  // NotifyAccess=main
      refused_++;
      return;
    }
    messages_.push_back({pid, text, static_cast<int>(fds.size())});
    std::vector<std::string> tags = absl::StrSplit(text, '\n', absl::SkipEmpty());
    auto has = [&](const std::string& t) {
      return std::find(tags.begin(), tags.end(), t) != tags.end();
    };
    std::string name;
    for (const auto& t : tags) {
      if (absl::StartsWith(t, "FDNAME=")) name = t.substr(7);
    }
    if (has("FDSTOREREMOVE=1") && FdNameIsValid(name)) {
      store_.erase(std::remove_if(store_.begin(), store_.end(),
                                  [&](const Entry& e) { return e.name == name; }),
                   store_.end());
    }
    if (!has("FDSTORE=1")) return;  // other fds: closed ("extra auxiliary fds")
    if (!FdNameIsValid(name)) name = "stored";
    for (auto& f : fds) {
      if (store_.size() >= max_) break;  // "Hit fd store limit": the rest are closed
      bool dup = false;
      for (const auto& e : store_) dup = dup || SameFile(e.fd.get(), f.get());
      if (!dup) store_.push_back({name, std::move(f)});
    }
  }

  std::string path_;
  size_t max_;
  bool ok_ = false;
  UniqueFd sock_, stop_;
  std::atomic<pid_t> main_pid_{0};
  std::atomic<int> refused_{0};
  std::mutex mu_;
  std::vector<Entry> store_;
  std::vector<Message> messages_;
  std::thread thread_;
};

// ------------------------------------------------ the agent, exec'd as systemd does

std::string AgentBinary() {
  if (const char* p = getenv("SECCOMP_AGENT_BIN"); p != nullptr && *p != '\0') return p;
  const char* srcdir = getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/seccomp_agent/agent/seccomp-agent");
}

// Forks and execs the agent with `fds` at 3.. (LISTEN_FDS/LISTEN_FDNAMES,
// LISTEN_PID = the child's own pid, set after fork), NOTIFY_SOCKET when not
// empty, stderr appended to `log`. Returns the pid.
pid_t LaunchAgent(const std::vector<std::string>& args, const std::string& log,
                  const std::string& notify_socket, const std::vector<NamedFd>& fds) {
  std::vector<std::string> argv_s = {AgentBinary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    absl::string_view v(*e);
    if (absl::StartsWith(v, "LISTEN_") || absl::StartsWith(v, "NOTIFY_SOCKET=")) continue;
    env_s.emplace_back(v);
  }
  if (!notify_socket.empty()) env_s.push_back("NOTIFY_SOCKET=" + notify_socket);
  std::vector<std::string> names;
  for (const auto& f : fds) names.push_back(f.name);
  if (!fds.empty()) {
    env_s.push_back(absl::StrCat("LISTEN_FDS=", fds.size()));
    env_s.push_back("LISTEN_FDNAMES=" + absl::StrJoin(names, ":"));
  }
  char listen_pid[32] = "LISTEN_PID=";
  std::vector<char*> argv, envp;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env_s) envp.push_back(s.data());
  if (!fds.empty()) envp.push_back(listen_pid);
  envp.push_back(nullptr);
  std::vector<int> src;
  for (const auto& f : fds) src.push_back(f.fd.get());
  int logfd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  pid_t pid = fork();
  if (pid != 0) {
    close(logfd);
    close(devnull);
    return pid;
  }
  // Child: async-signal-safe calls only.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  setpgid(0, 0);
  dup2(devnull, 0);
  dup2(logfd, 1);
  dup2(logfd, 2);
  int tmp[64];
  size_t n = src.size() < 64 ? src.size() : 64;
  for (size_t i = 0; i < n; ++i) tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 200);
  for (size_t i = 0; i < n; ++i) dup2(tmp[i], 3 + static_cast<int>(i));  // clears CLOEXEC
  syscall(SYS_close_range, 3 + n, ~0U, 0);
  // LISTEN_PID=<our pid>, as systemd sets it after its fork.
  char digits[16];
  int k = 0;
  for (pid_t p = getpid(); p > 0; p /= 10) digits[k++] = static_cast<char>('0' + p % 10);
  char* w = listen_pid + strlen("LISTEN_PID=");
  while (k > 0) *w++ = digits[--k];
  *w = '\0';
  execve(argv[0], argv.data(), envp.data());
  _exit(127);
}

// ------------------------------------------------ a trapping "container"

struct Counters {
  std::atomic<uint64_t> iterations{0}, eperm{0}, enosys{0}, other{0};
  std::atomic<int> last_other_errno{0};
  std::atomic<bool> stop{false};
};

// Like a runc container: a process that is pid 1 of its own pid namespace
// traps mkdir to a listener that is handed to the agent (the test keeps no
// copy). Its loop mkdirs /forbidden/x: the test policy answers EPERM; with
// no agent and no store the kernel answers ENOSYS.
class Workload {
 public:
  static std::unique_ptr<Workload> Spawn(std::string* why) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(mkdir), 0);
    auto prog = ExportBpf(ctx);
    if (!prog.ok()) {
      *why = std::string(prog.status().message());
      return nullptr;
    }
    auto w = std::unique_ptr<Workload>(new Workload());
    void* mem =
        mmap(nullptr, sizeof(Counters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    w->c_ = new (mem) Counters();
    int sv[2], pp[2], go[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(pp, O_CLOEXEC) != 0 ||
        pipe2(go, O_CLOEXEC) != 0) {
      *why = strerror(errno);
      return nullptr;
    }
    Counters* c = w->c_;
    pid_t a = fork();
    if (a == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (unshare(CLONE_NEWPID) != 0) _exit(99);
      pid_t b = fork();
      if (b == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        sock_fprog fprog{static_cast<unsigned short>(prog->size()), prog->data()};
        int l = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                        &fprog);
        if (l < 0 || !SendOneFd(sv[1], l)) _exit(120);
        close(l);  // else a dead agent would leave the task hanging, not ENOSYS
        char ch;
        if (read(go[0], &ch, 1) != 1) _exit(121);
        while (!c->stop.load()) {
          long r = syscall(SYS_mkdir, "/forbidden/x", 0755);
          if (r < 0 && errno == EPERM) {
            c->eperm++;
          } else if (r < 0 && errno == ENOSYS) {
            c->enosys++;
          } else {
            c->other++;
            c->last_other_errno = r < 0 ? errno : 0;
          }
          c->iterations++;
        }
        _exit(0);
      }
      (void)!write(pp[1], &b, sizeof(b));
      int st = 0;
      waitpid(b, &st, 0);
      _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
    close(sv[1]);
    close(pp[1]);
    close(go[0]);
    UniqueFd parent_sock(sv[0]), pid_pipe(pp[0]);
    w->helper_ = a;
    w->go_.reset(go[1]);
    if (read(pid_pipe.get(), &w->init_pid_, sizeof(pid_t)) != sizeof(pid_t)) {
      *why = "no pid from the helper (unshare(CLONE_NEWPID) failed?)";
      return nullptr;
    }
    int l = RecvOneFd(parent_sock.get());
    if (l < 0) {
      *why = "no listener from the workload";
      return nullptr;
    }
    w->listener_.reset(l);
    return w;
  }
  ~Workload() {
    if (helper_ > 0) {
      kill(helper_, SIGKILL);
      if (init_pid_ > 0) kill(init_pid_, SIGKILL);
      waitpid(helper_, nullptr, 0);
    }
    if (c_ != nullptr) munmap(c_, sizeof(Counters));
  }

  // The runtime's handoff: runc-shaped JSON + the listener, then our copy is closed.
  bool HandTo(const std::string& agent_socket, const std::string& id) {
    nlohmann::json msg = {{"ociVersion", "1.0.2-dev"},
                          {"fds", {"seccompFd"}},
                          {"pid", init_pid_},
                          {"state",
                           {{"ociVersion", "1.0.2-dev"},
                            {"id", id},
                            {"status", "creating"},
                            {"pid", init_pid_},
                            {"bundle", "/"}}}};
    UniqueFd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, agent_socket.c_str(), sizeof(a.sun_path) - 1);
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return false;
    bool ok = SendMessage(s.get(), msg.dump(), listener_.get()).ok();
    listener_.reset();
    return ok;
  }
  void Go() { (void)!write(go_.get(), "g", 1); }
  // Stops the loop; the exit code of the "container".
  int StopAndWait() {
    c_->stop = true;
    int st = 0;
    pid_t h = std::exchange(helper_, -1);
    if (waitpid(h, &st, 0) != h) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  const Counters& counters() const { return *c_; }
  pid_t init_pid() const { return init_pid_; }

 private:
  Workload() = default;
  Counters* c_ = nullptr;
  pid_t helper_ = -1, init_pid_ = -1;
  UniqueFd listener_, go_;
};

constexpr char kPolicy[] = R"(version: 1
default_action: {allow: {}}
rules:
  - name: no-mkdir-in-forbidden
    match: {syscalls: [mkdir, mkdirat], args: {path: "/forbidden/**"}}
    action: {deny: {errno: EPERM}}
)";

class FdStoreE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root (pid namespace, reading other tasks)";
    ASSERT_EQ(access(AgentBinary().c_str(), X_OK), 0) << "no agent binary " << AgentBinary();
    char tmpl[] = "/tmp/sa-fdstore-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/policy.yaml") << kPolicy;
    sm_ = std::make_unique<FakeServiceManager>(dir_ + "/notify.sock");
    ASSERT_TRUE(sm_->ok()) << strerror(errno);
    // seccomp-agent.socket: systemd owns the listening handoff socket.
    socket_path_ = dir_ + "/agent.sock";
    activated_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, socket_path_.c_str(), sizeof(a.sun_path) - 1);
    ASSERT_EQ(bind(activated_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(listen(activated_.get(), 64), 0);
  }
  void TearDown() override {
    for (pid_t p : agents_) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
    sm_.reset();
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  std::vector<std::string> Flags() {
    return {"--socket=" + socket_path_, "--policy=" + dir_ + "/policy.yaml",
            "--decision_log=" + dir_ + "/decisions.jsonl", "--metrics_address="};
  }
  // Starts agent number `n` as systemd would: socket first, then the store.
  pid_t Start(int n, std::vector<std::string> extra = {}) {
    std::vector<NamedFd> fds;
    fds.push_back({"seccomp-agent.socket", UniqueFd(fcntl(activated_.get(), F_DUPFD_CLOEXEC, 3))});
    for (auto& f : sm_->DupStore()) fds.push_back(std::move(f));
    std::vector<std::string> args = Flags();
    args.insert(args.end(), extra.begin(), extra.end());
    pid_t pid = LaunchAgent(args, Log(n), sm_->path(), fds);
    sm_->set_main_pid(pid);
    agents_.push_back(pid);
    return pid;
  }
  std::string Log(int n) { return absl::StrCat(dir_, "/agent", n, ".log"); }
  bool WaitForLog(int n, const std::string& needle, absl::Duration t = absl::Seconds(10)) {
    return testing::WaitFor([&] { return absl::StrContains(ReadFile(Log(n)), needle); }, t);
  }
  void Kill9(pid_t pid) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    agents_.erase(std::remove(agents_.begin(), agents_.end(), pid), agents_.end());
  }
  std::vector<std::string> OurNames() {
    std::vector<std::string> out;
    for (const auto& n : sm_->StoredNames()) {
      if (absl::StartsWith(n, kFdStoreNamePrefix)) out.push_back(n);
    }
    return out;
  }

  std::string dir_, socket_path_;
  std::unique_ptr<FakeServiceManager> sm_;
  UniqueFd activated_;
  std::vector<pid_t> agents_;
};

TEST(FdStoreNameTest, ValidUniqueAndBounded) {
  ContainerInfo a;
  a.id = "web:1/α";
  a.init_pid = 123;
  ContainerInfo b = a;
  b.id = "web_1__";  // sanitizes to the same characters as `a` up to the hash
  const std::string na = FdStoreName(a), nb = FdStoreName(b);
  EXPECT_TRUE(FdNameIsValid(na)) << na;
  EXPECT_TRUE(absl::StartsWith(na, kFdStoreNamePrefix)) << na;
  EXPECT_NE(na, nb);
  ContainerInfo longid;
  longid.id = std::string(5000, 'x');
  longid.init_pid = 2147483647;
  EXPECT_TRUE(FdNameIsValid(FdStoreName(longid)));
  EXPECT_FALSE(FdNameIsValid("a:b"));
  EXPECT_FALSE(FdNameIsValid(std::string(256, 'a')));
}

TEST(FdStoreMemfdTest, SealedRoundTripAndUnsealedRefused) {
  auto fd = SealedMemfd("{\"x\":1}");
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_NE(write(fd->get(), "y", 1), 1);  // sealed
  auto back = ReadSealedMemfd(fd->get());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "{\"x\":1}");
  UniqueFd plain(memfd_create("x", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(write(plain.get(), "{}", 2), 2);
  EXPECT_FALSE(ReadSealedMemfd(plain.get()).ok());
}

// The main scenario: the container traps continuously; the agent is
// SIGKILLed three times and exec'd again with the store in LISTEN_FDS.
TEST_F(FdStoreE2ETest, KilledAgentIsRestoredFromTheFdStoreWithoutEnosys) {
  pid_t agent = Start(0);
  ASSERT_TRUE(
      testing::WaitFor([&] { return sm_->Count({"READY=1"}, agent) == 1; }, absl::Seconds(15)))
      << ReadFile(Log(0));
  ASSERT_TRUE(WaitForLog(0, "holder: systemd fd store via NOTIFY_SOCKET")) << ReadFile(Log(0));
  ASSERT_TRUE(WaitForLog(0, "serving the socket-activated handoff socket (fd 3)"))
      << ReadFile(Log(0));

  std::string why;
  auto w = Workload::Spawn(&why);
  ASSERT_NE(w, nullptr) << "cannot make a trapping process in a pid namespace: " << why;
  const std::string id = absl::StrCat("fdstore-e2e-", getpid());
  ASSERT_TRUE(w->HandTo(socket_path_, id));
  w->Go();
  ASSERT_TRUE(testing::WaitFor([&] { return w->counters().eperm >= 200; }, absl::Seconds(15)))
      << ReadFile(Log(0));

  // Stored: one name, two fds (a sealed memfd with the metadata, the listener).
  ASSERT_TRUE(testing::WaitFor([&] { return OurNames().size() == 2; }, absl::Seconds(5)))
      << absl::StrJoin(sm_->StoredNames(), ",");
  const std::string name = OurNames()[0];
  EXPECT_EQ(OurNames()[1], name);
  int listeners = 0;
  for (auto& f : sm_->DupStore()) {
    if (f.name != name) continue;
    if (CheckIsListener(f.fd.get()).ok()) {
      ++listeners;
      continue;
    }
    auto text = ReadSealedMemfd(f.fd.get());
    ASSERT_TRUE(text.ok()) << text.status();
    auto j = nlohmann::json::parse(*text);
    EXPECT_EQ(j["info"]["id"], id);
    EXPECT_EQ(j["info"]["init_pid"], w->init_pid());
  }
  EXPECT_EQ(listeners, 1);
  EXPECT_EQ(sm_->Count({"FDSTORE=1", "FDNAME=" + name}), 1);

  for (int r = 1; r <= 3; ++r) {
    Kill9(agent);
    const uint64_t before = w->counters().iterations;
    absl::SleepFor(absl::Milliseconds(400));  // nobody serves: the task waits in the kernel
    EXPECT_LE(w->counters().iterations - before, 1u) << "restart " << r;
    EXPECT_EQ(w->counters().enosys, 0u) << "restart " << r;
    agent = Start(r);
    ASSERT_TRUE(WaitForLog(r, absl::StrCat("container ", id, " restored from systemd fd store")))
        << "restart " << r << ":\n"
        << ReadFile(Log(r));
    const uint64_t eperm = w->counters().eperm;
    ASSERT_TRUE(
        testing::WaitFor([&] { return w->counters().eperm >= eperm + 200; }, absl::Seconds(15)))
        << "restart " << r << ": not served after restore:\n"
        << ReadFile(Log(r));
    // Not stored again: the store still holds exactly the pair, sent once.
    EXPECT_EQ(OurNames().size(), 2u);
    EXPECT_EQ(sm_->Count({"FDSTORE=1"}, agent), 0) << "restart " << r;
  }
  EXPECT_EQ(sm_->Count({"FDSTORE=1", "FDNAME=" + name}), 1);

  EXPECT_EQ(w->StopAndWait(), 0);
  const Counters& c = w->counters();
  // A kill between NOTIF_RECV and NOTIF_SEND leaves a notification nobody
  // can answer; the shared EngineSync::Restore code restarts that syscall.
  int orphans = 0;
  for (int r = 1; r <= 3; ++r) {
    for (absl::string_view l : absl::StrSplit(ReadFile(Log(r)), '\n')) {
      orphans += absl::StrContains(l, "never answered; restarted");
    }
  }
  printf(
      "fdstore_e2e: 3 restarts, %llu trapped mkdirs, eperm=%llu enosys=%llu other=%llu, "
      "orphaned notifications recovered=%d\n",
      static_cast<unsigned long long>(c.iterations.load()),
      static_cast<unsigned long long>(c.eperm.load()),
      static_cast<unsigned long long>(c.enosys.load()),
      static_cast<unsigned long long>(c.other.load()), orphans);
  EXPECT_EQ(c.enosys, 0u);
  EXPECT_EQ(c.other, 0u) << "last errno " << c.last_other_errno;
  EXPECT_EQ(c.eperm, c.iterations);
  // The exited container leaves the registry and, by the agent's
  // FDSTOREREMOVE, the store (the memfd never hangs up by itself).
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return sm_->Count({"FDSTOREREMOVE=1", "FDNAME=" + name}, agent) == 1;
      },
      absl::Seconds(10)))
      << ReadFile(Log(3));
  EXPECT_TRUE(testing::WaitFor([&] { return OurNames().empty(); }, absl::Seconds(5)));
  EXPECT_EQ(sm_->refused(), 0);
  kill(agent, SIGTERM);
  int st = 0;
  ASSERT_EQ(waitpid(agent, &st, 0), agent);
  agents_.clear();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << ReadFile(Log(3));
}

// Left in the store by earlier agents: the metadata of a container that
// exited while no agent ran (systemd dropped its listener on POLLHUP), and
// an fd that is not ours. The first is removed, the second left alone, and
// the socket-activated socket is still found among them.
TEST_F(FdStoreE2ETest, HalfEntriesAreRemovedForeignFdsIgnored) {
  ContainerInfo gone;
  gone.id = "gone";
  gone.init_pid = 999999;
  auto memfd = SealedMemfd(nlohmann::json{
      {"v", 1}, {"key", "gone/999999"}, {"info", nlohmann::json::parse(InfoToJson(gone))}}
                               .dump());
  ASSERT_TRUE(memfd.ok());
  const std::string gone_name = FdStoreName(gone);
  sm_->Inject(gone_name, *std::move(memfd));
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd keep_write_end(p[1]);
  sm_->Inject("something-else", UniqueFd(p[0]));

  pid_t agent = Start(0);
  ASSERT_TRUE(
      testing::WaitFor([&] { return sm_->Count({"READY=1"}, agent) == 1; }, absl::Seconds(15)))
      << ReadFile(Log(0));
  EXPECT_TRUE(WaitForLog(0, "serving the socket-activated handoff socket (fd 3)"))
      << ReadFile(Log(0));
  EXPECT_TRUE(WaitForLog(0, "systemd fd store: 0 containers restored")) << ReadFile(Log(0));
  EXPECT_EQ(sm_->Count({"FDSTOREREMOVE=1", "FDNAME=" + gone_name}, agent), 1) << ReadFile(Log(0));
  EXPECT_EQ(sm_->StoredNames(), std::vector<std::string>{"something-else"});
}

// An explicit non-systemd mode does not leave stored containers waiting
// forever in a store nobody reads: they are removed, with a warning.
TEST_F(FdStoreE2ETest, NonSystemdModeRemovesStoredEntries) {
  ContainerInfo old;
  old.id = "old";
  old.init_pid = 999998;
  auto memfd = SealedMemfd(
      nlohmann::json{{"v", 1}, {"info", nlohmann::json::parse(InfoToJson(old))}}.dump());
  ASSERT_TRUE(memfd.ok());
  const std::string name = FdStoreName(old);
  sm_->Inject(name, *std::move(memfd));
  pid_t agent = Start(0, {"--holder_mode=none"});
  ASSERT_TRUE(
      testing::WaitFor([&] { return sm_->Count({"READY=1"}, agent) == 1; }, absl::Seconds(15)))
      << ReadFile(Log(0));
  EXPECT_EQ(sm_->Count({"FDSTOREREMOVE=1", "FDNAME=" + name}, agent), 1) << ReadFile(Log(0));
  EXPECT_TRUE(absl::StrContains(ReadFile(Log(0)), "but --holder_mode is not systemd"))
      << ReadFile(Log(0));
  EXPECT_TRUE(OurNames().empty());
}

// --holder_mode=systemd without NOTIFY_SOCKET: one clear line, and the
// agent serves as without a holder.
TEST_F(FdStoreE2ETest, SystemdModeWithoutNotifySocketWarns) {
  pid_t agent = LaunchAgent({"--socket=" + dir_ + "/run/agent.sock",
                             "--policy=" + dir_ + "/policy.yaml", "--holder_mode=systemd"},
                            Log(0), "", {});
  agents_.push_back(agent);
  ASSERT_TRUE(WaitForLog(0, "listening on")) << ReadFile(Log(0));
  EXPECT_TRUE(absl::StrContains(
      ReadFile(Log(0)),
      "systemd fd store unavailable: restarts will lose containers (NOTIFY_SOCKET is not set)"))
      << ReadFile(Log(0));
}

}  // namespace
}  // namespace seccomp_agent::holder
