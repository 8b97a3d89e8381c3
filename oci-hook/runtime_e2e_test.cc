// The hook's output run by real runc and crun: a busybox rootfs, a
// `runc spec` config piped through the installed-style hook binary, and a
// small in-test agent on listenerPath that receives the listener fd and
// answers notifications with the policy library (CompiledPolicy::Evaluate,
// path decoded with process_vm_readv). It checks that a compiled rule's
// errno appears with NO notification reaching the agent, and that with
// compilation off the same errno comes through the agent.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/fd.h"
#include "agent/policy/policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::ordered_json;

std::string Runfile(const std::string& rel) {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* ws = getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return rel;
  return absl::StrCat(srcdir, "/", ws == nullptr ? "seccomp_agent" : ws, "/", rel);
}

struct CmdResult {
  int status = -1;  // exit code, or 128+signal, or -1 on timeout
  std::string out, err;
  std::string Describe() const {
    return absl::StrCat("status ", status, "\nstdout: ", out, "\nstderr: ", err);
  }
};

// Runs argv with `in` on stdin; kills the process group at `timeout`.
CmdResult RunCmd(const std::vector<std::string>& argv, const std::string& in,
                 absl::Duration timeout) {
  CmdResult r;
  int pin[2], pout[2], perr[2];
  if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) return r;
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(pin[0], 0);
    dup2(pout[1], 1);
    dup2(perr[1], 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(pin[0]);
  close(pout[1]);
  close(perr[1]);
  // Feed stdin from a thread so a large input cannot deadlock with output.
  std::thread feeder([fd = pin[1], in] {
    size_t off = 0;
    while (off < in.size()) {
      ssize_t n = write(fd, in.data() + off, in.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    close(fd);
  });
  const absl::Time deadline = absl::Now() + timeout;
  bool open_out = true, open_err = true, timed_out = false;
  char buf[8192];
  while (open_out || open_err) {
    struct pollfd p[2] = {{open_out ? pout[0] : -1, POLLIN, 0},
                          {open_err ? perr[0] : -1, POLLIN, 0}};
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) {
      timed_out = true;
      break;
    }
    if (poll(p, 2, static_cast<int>(ms)) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      ssize_t n = read(p[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        (i == 0 ? open_out : open_err) = false;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  if (timed_out) kill(-pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  feeder.join();
  close(pout[0]);
  close(perr[0]);
  if (timed_out) {
    r.status = -1;
  } else {
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  return r;
}

// ---- A small agent on listenerPath -------------------------------------

struct Notification {
  std::string syscall;
  std::string path;
};

class FakeAgent {
 public:
  FakeAgent(const std::string& path, std::shared_ptr<const CompiledPolicy> policy)
      : policy_(std::move(policy)) {
    listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa = {};
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
    ok_ = bind(listen_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0 &&
          listen(listen_.get(), 8) == 0;
    int p[2];
    ok_ = ok_ && pipe2(p, O_CLOEXEC) == 0;
    if (ok_) {
      stop_r_.reset(p[0]);
      stop_w_.reset(p[1]);
      thread_ = std::thread([this] { Loop(); });
    }
  }
  ~FakeAgent() {
    if (stop_w_) (void)!write(stop_w_.get(), "x", 1);
    if (thread_.joinable()) thread_.join();
  }
  bool ok() const { return ok_; }
  std::vector<Notification> notifications() {
    std::lock_guard<std::mutex> l(mu_);
    return seen_;
  }
  std::vector<std::string> metadata() {
    std::lock_guard<std::mutex> l(mu_);
    return metadata_;
  }
  int handoffs() {
    std::lock_guard<std::mutex> l(mu_);
    return static_cast<int>(metadata_.size());
  }

 private:
  void Loop() {
    std::vector<UniqueFd> conns, listeners;
    struct seccomp_notif* req = nullptr;
    struct seccomp_notif_resp* resp = nullptr;
    if (seccomp_notify_alloc(&req, &resp) != 0) return;
    for (;;) {
      std::vector<pollfd> p = {{stop_r_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}};
      for (const UniqueFd& c : conns) p.push_back({c.get(), POLLIN, 0});
      for (const UniqueFd& l : listeners) p.push_back({l.get(), POLLIN, 0});
      if (poll(p.data(), p.size(), 1000) < 0 && errno != EINTR) break;
      if (p[0].revents) break;
      if (p[1].revents & POLLIN) {
        int c = accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) conns.emplace_back(c);
      }
      size_t k = 2;
      const size_t polled_listeners = listeners.size(),
                   polled_conns = p.size() - 2 - polled_listeners;
      std::vector<UniqueFd> fresh;
      for (size_t i = 0; i < polled_conns; ++i, ++k) {
        if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        // EOF carries no meaning: just stop watching that connection.
        if (!ReadHandoff(conns[i].get(), &fresh)) conns[i].reset();
      }
      for (size_t i = 0; i < polled_listeners; ++i, ++k) {
        if (p[k].revents & (POLLHUP | POLLERR)) {
          listeners[i].reset();
          continue;
        }
        if (!(p[k].revents & POLLIN)) continue;
        memset(req, 0, sizeof(*req));
        if (seccomp_notify_receive(listeners[i].get(), req) != 0) continue;
        Answer(listeners[i].get(), req, resp);
      }
      // Forget closed listeners / connections.
      std::vector<UniqueFd> live;
      for (UniqueFd& l : listeners) {
        if (l) live.push_back(std::move(l));
      }
      for (UniqueFd& f : fresh) live.push_back(std::move(f));
      listeners = std::move(live);
      std::vector<UniqueFd> open_conns;
      for (UniqueFd& c : conns) {
        if (c) open_conns.push_back(std::move(c));
      }
      conns = std::move(open_conns);
    }
    seccomp_notify_free(req, resp);
  }

  // One runtime message: JSON plus the listener fd. Runtimes keep the
  // connection open (crun sends only at start), so a read of 0 is just EOF.
  bool ReadHandoff(int c, std::vector<UniqueFd>* listeners) {
    char buf[65536];
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {buf, sizeof(buf) - 1};
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof(cbuf);
    ssize_t n = recvmsg(c, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) return false;
    for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
      if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
        int fd;
        memcpy(&fd, CMSG_DATA(h), sizeof(int));
        listeners->emplace_back(fd);
      }
    }
    std::string md = "(absent)";
    try {
      json j = json::parse(std::string(buf, static_cast<size_t>(n)));
      if (j.contains("metadata")) md = j["metadata"].get<std::string>();
    } catch (const std::exception&) {
      md = "(unparsed)";
    }
    std::lock_guard<std::mutex> l(mu_);
    metadata_.push_back(md);
    return true;
  }

  void Answer(int fd, struct seccomp_notif* req, struct seccomp_notif_resp* resp) {
    SyscallEvent ev;
    ContainerInfo ci;
    ev.container = &ci;
    char* name = seccomp_syscall_resolve_num_arch(req->data.arch, req->data.nr);
    ev.syscall = name != nullptr ? name : "?";
    free(name);
    ev.pid = static_cast<pid_t>(req->pid);
    for (int i = 0; i < 6; ++i) ev.args[i] = req->data.args[i];
    int path_arg = -1;
    if (ev.syscall == "mkdir" || ev.syscall == "rmdir") path_arg = 0;
    if (ev.syscall == "mkdirat") path_arg = 1;
    if (path_arg >= 0) {
      char path[4096] = {};
      struct iovec local = {path, sizeof(path) - 1};
      struct iovec remote = {reinterpret_cast<void*>(ev.args[path_arg]), sizeof(path) - 1};
      if (process_vm_readv(ev.pid, &local, 1, &remote, 1, 0) > 0) ev.path = std::string(path);
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      seen_.push_back({ev.syscall, ev.path.value_or("")});
    }
    CompiledPolicy::Verdict v = policy_->Evaluate(ev);
    memset(resp, 0, sizeof(*resp));
    resp->id = req->id;
    if (seccomp_notify_id_valid(fd, req->id) != 0) return;
    if (v.action->kind_case() == v1::Action::kDeny) {
      resp->error = -v.action->deny().errno_code();
    } else {
      resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    }
    seccomp_notify_respond(fd, resp);
  }

  std::shared_ptr<const CompiledPolicy> policy_;
  bool ok_ = false;
  UniqueFd listen_, stop_r_, stop_w_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Notification> seen_;
  std::vector<std::string> metadata_;
};

// ---- Bundles -------------------------------------------------------------

enum class Runtime { kRunc, kCrun };

class Bundle {
 public:
  Bundle() {
    char t[] = "/tmp/sahk-XXXXXX";
    dir_ = mkdtemp(t);
  }
  ~Bundle() {
    if (!id_.empty()) {
      RunCmd({"runc", "--root", dir_ + "/state", "delete", "-f", id_}, "", absl::Seconds(20));
      RunCmd({"crun", "--root", dir_ + "/state", "delete", "-f", id_}, "", absl::Seconds(20));
    }
    RunCmd({"rm", "-rf", dir_}, "", absl::Seconds(30));
  }
  const std::string& dir() const { return dir_; }

  ::testing::AssertionResult BuildRootfs() {
    const std::string rootfs = dir_ + "/bundle/rootfs";
    for (const char* d : {"bin", "proc", "dev", "sys", "tmp", "forbidden", "etc"}) {
      if (RunCmd({"mkdir", "-p", rootfs + "/" + d}, "", absl::Seconds(10)).status != 0) {
        return ::testing::AssertionFailure() << "mkdir " << d;
      }
    }
    if (RunCmd({"cp", "/usr/bin/busybox", rootfs + "/bin/busybox"}, "", absl::Seconds(10)).status !=
        0) {
      return ::testing::AssertionFailure() << "copy busybox (install busybox-static)";
    }
    CmdResult list = RunCmd({"/usr/bin/busybox", "--list"}, "", absl::Seconds(10));
    std::istringstream ss(list.out);
    std::string applet;
    while (std::getline(ss, applet)) {
      if (!applet.empty() && applet != "busybox")
        symlink("busybox", (rootfs + "/bin/" + applet).c_str());
    }
    std::ofstream(rootfs + "/etc/passwd") << "root:x:0:0:root:/:/bin/sh\n";
    std::ofstream(rootfs + "/etc/group") << "root:x:0:\n";
    return ::testing::AssertionSuccess();
  }

  // `runc spec`, adjusted for a non-interactive run of `sh -c script`.
  ::testing::AssertionResult Spec(const std::string& script, const std::string& policy) {
    CmdResult r = RunCmd({"runc", "spec", "--bundle", dir_ + "/bundle"}, "", absl::Seconds(10));
    if (r.status != 0) return ::testing::AssertionFailure() << "runc spec: " << r.Describe();
    std::ifstream in(dir_ + "/bundle/config.json");
    std::stringstream s;
    s << in.rdbuf();
    json c = json::parse(s.str());
    c["process"]["terminal"] = false;
    c["process"]["args"] = json::array({"sh", "-c", script});
    c["hostname"] = "hook-e2e";
    c["annotations"]["seccomp-agent.io/policy"] = policy;
    spec_ = c.dump();
    return ::testing::AssertionSuccess();
  }
  const std::string& spec() const { return spec_; }

  void WriteConfig(const std::string& text) { std::ofstream(dir_ + "/bundle/config.json") << text; }

  CmdResult Run(Runtime rt, const std::string& id) {
    id_ = id;
    const std::string state = dir_ + "/state";
    if (rt == Runtime::kRunc) {
      return RunCmd(
          {"timeout", "-k", "5", "60", "runc", "--root", state, "run", "-b", dir_ + "/bundle", id},
          "", absl::Seconds(75));
    }
    // crun refuses this host's hybrid cgroups: run it in a private mount
    // namespace without the cgroup2 mount (nothing changes on the host).
    return RunCmd({"timeout", "-k", "5", "60", "unshare", "-m", "--propagation", "private", "sh",
                   "-c", "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun \"$@\"", "crun",
                   "--root", state, "run", "-b", dir_ + "/bundle", id},
                  "", absl::Seconds(75));
  }

 private:
  std::string dir_, spec_, id_;
};

std::string HookBinary() { return Runfile("oci-hook/seccomp-agent-hook"); }
std::string PolicyDir() { return Runfile("oci-hook/testdata/policies"); }

struct Scenario {
  const char* name;
  const char* policy;
  bool compile;
  const char* script;
  std::vector<const char*> want_output;     // substrings of stdout+stderr
  std::vector<const char*> notified;        // syscalls the agent must see
  std::vector<const char*> never_notified;  // syscalls the agent must not see
};

void PrintTo(const Scenario& s, std::ostream* os) { *os << s.name; }
void PrintTo(Runtime r, std::ostream* os) { *os << (r == Runtime::kRunc ? "runc" : "crun"); }

class RuntimeE2eTest : public ::testing::TestWithParam<std::tuple<Runtime, Scenario>> {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root (containers)";
    for (const char* tool : {"runc", "crun", "unshare", "/usr/bin/busybox"}) {
      if (RunCmd({"sh", "-c", absl::StrCat("command -v ", tool)}, "", absl::Seconds(5)).status !=
          0) {
        FAIL() << tool << " is not installed";
      }
    }
  }
};

int counter = 0;

TEST_P(RuntimeE2eTest, HookOutputRunsAndCompiledRulesNeverNotify) {
  const Runtime rt = std::get<0>(GetParam());
  const Scenario& sc = std::get<1>(GetParam());
  Bundle b;
  ASSERT_TRUE(b.BuildRootfs());
  ASSERT_TRUE(b.Spec(sc.script, sc.policy));
  const std::string sock = b.dir() + "/agent.sock";
  auto policy = CompiledPolicy::LoadFile(PolicyDir() + "/" + sc.policy + ".yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  FakeAgent agent(sock, *policy);
  ASSERT_TRUE(agent.ok());
  {
    std::ofstream cfg(b.dir() + "/hook.json");
    cfg << json{{"agent_socket", sock},
                {"policy_dir", PolicyDir()},
                {"compile", sc.compile},
                {"runtime", rt == Runtime::kRunc ? "runc" : "crun"}}
               .dump();
  }
  CmdResult hook = RunCmd({HookBinary(), "--config=" + b.dir() + "/hook.json", "precreate"},
                          b.spec(), absl::Seconds(20));
  ASSERT_EQ(hook.status, 0) << hook.Describe();
  json out = json::parse(hook.out);
  EXPECT_EQ(out["linux"]["seccomp"]["listenerPath"], sock);
  b.WriteConfig(hook.out);
  // Idempotent on the real thing too.
  CmdResult again = RunCmd({HookBinary(), "--config=" + b.dir() + "/hook.json", "precreate"},
                           hook.out, absl::Seconds(20));
  ASSERT_EQ(again.status, 0) << again.Describe();
  EXPECT_EQ(again.out, hook.out);

  const std::string id = absl::StrCat("sahk-", getpid(), "-", ++counter);
  CmdResult run = b.Run(rt, id);
  ASSERT_EQ(run.status, 0) << "config: " << hook.out << "\n" << run.Describe();
  const std::string all = run.out + run.err;
  for (const char* w : sc.want_output) EXPECT_THAT(all, HasSubstr(w)) << run.Describe();
  EXPECT_THAT(all, HasSubstr("END")) << run.Describe();

  // The runtime handed the listener over with our metadata.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (agent.handoffs() == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_EQ(agent.handoffs(), 1);
  EXPECT_EQ(agent.metadata()[0], absl::StrCat("seccomp-agent.io/policy=", sc.policy));
  std::vector<std::string> seen;
  for (const Notification& n : agent.notifications()) seen.push_back(n.syscall + ":" + n.path);
  const std::string seen_text = absl::StrJoin(seen, " ");
  for (const char* s : sc.notified)
    EXPECT_THAT(seen_text, HasSubstr(s)) << "agent saw: " << seen_text;
  for (const char* s : sc.never_notified) {
    EXPECT_THAT(seen_text, Not(HasSubstr(s))) << "agent saw: " << seen_text;
  }
}

// NOTIFY on write: refused for runc by the hook (runc itself would refuse
// the profile), accepted for crun, and crun really runs it (the agent's
// CONTINUE lets the writes through; replace_write is not emulated here).
TEST(RuntimeE2eWriteTest, WriteNotifyRefusedForRuncRunsUnderCrun) {
  ASSERT_EQ(geteuid(), 0u) << "needs root (containers)";
  if (RunCmd({"sh", "-c", "command -v crun && command -v runc"}, "", absl::Seconds(5)).status !=
      0) {
    FAIL() << "runc/crun not installed";
  }
  Bundle b;
  ASSERT_TRUE(b.BuildRootfs());
  ASSERT_TRUE(b.Spec("echo one; echo two; echo END", "redact-stdout"));
  const std::string sock = b.dir() + "/agent.sock";
  auto policy = CompiledPolicy::LoadFile(PolicyDir() + "/redact-stdout.yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  FakeAgent agent(sock, *policy);
  ASSERT_TRUE(agent.ok());
  for (const char* rt : {"runc", "any"}) {
    std::ofstream(b.dir() + "/hook.json")
        << json{{"agent_socket", sock}, {"policy_dir", PolicyDir()}, {"runtime", rt}}.dump();
    CmdResult hook = RunCmd({HookBinary(), "--config=" + b.dir() + "/hook.json", "precreate"},
                            b.spec(), absl::Seconds(20));
    EXPECT_EQ(hook.status, 1) << hook.Describe();
    EXPECT_EQ(hook.out, "");
    EXPECT_THAT(hook.err, HasSubstr("needs SCMP_ACT_NOTIFY on write"));
  }
  // What runc says about such a profile, for the record.
  json spec = json::parse(b.spec());
  spec["linux"]["seccomp"] =
      json{{"defaultAction", "SCMP_ACT_ALLOW"},
           {"listenerPath", sock},
           {"syscalls", json::array({json{{"names", {"write"}}, {"action", "SCMP_ACT_NOTIFY"}}})}};
  b.WriteConfig(spec.dump());
  CmdResult runc = b.Run(Runtime::kRunc, absl::StrCat("sahk-w-", getpid()));
  EXPECT_NE(runc.status, 0);
  EXPECT_THAT(runc.err, HasSubstr("SCMP_ACT_NOTIFY cannot be used for the write syscall"));

  std::ofstream(b.dir() + "/hook.json")
      << json{{"agent_socket", sock}, {"policy_dir", PolicyDir()}, {"runtime", "crun"}}.dump();
  CmdResult hook = RunCmd({HookBinary(), "--config=" + b.dir() + "/hook.json", "precreate"},
                          b.spec(), absl::Seconds(20));
  ASSERT_EQ(hook.status, 0) << hook.Describe();
  b.WriteConfig(hook.out);
  CmdResult run = b.Run(Runtime::kCrun, absl::StrCat("sahk-w2-", getpid()));
  ASSERT_EQ(run.status, 0) << run.Describe();
  EXPECT_THAT(run.out, HasSubstr("one\ntwo\nEND"));
  int writes = 0;
  for (const Notification& n : agent.notifications()) writes += n.syscall == "write";
  EXPECT_GE(writes, 3);
}

// A podman-like base profile (defaultAction ERRNO/ENOSYS, everything else
// allowed by name, socket allowed only when arg0 != AF_VSOCK) merged with
// e2e-scalars: socket becomes a conditional NOTIFY (all its rules with the
// agent), unshare gets the compiled deny plus its complement as an explicit
// ALLOW (without which `unshare -m` would get the profile's ENOSYS).
class BaseProfileE2eTest : public ::testing::TestWithParam<Runtime> {};

TEST_P(BaseProfileE2eTest, MergedErrnoDefaultProfileBehaves) {
  ASSERT_EQ(geteuid(), 0u) << "needs root (containers)";
  if (RunCmd({"sh", "-c", "command -v crun && command -v runc"}, "", absl::Seconds(5)).status !=
      0) {
    FAIL() << "runc/crun not installed";
  }
  Bundle b;
  ASSERT_TRUE(b.BuildRootfs());
  ASSERT_TRUE(
      b.Spec("arping -c 1 -w 1 -I lo 127.0.0.1; unshare -U true; unshare -m true; "
             "rmdir /dev/shm/keep; nc -l -p 1 -s 127.0.0.1 -w 1 & sleep 0.2; kill $! 2>/dev/null; "
             "echo END",
             "e2e-scalars"));
  json names = json::array();
  for (int nr = 0; nr < 512; ++nr) {
    char* n = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
    if (n == nullptr) continue;
    if (strcmp(n, "socket") != 0) names.push_back(n);
    free(n);
  }
  json spec = json::parse(b.spec());
  spec["linux"]["seccomp"] = json{
      {"defaultAction", "SCMP_ACT_ERRNO"},
      {"defaultErrnoRet", 38},
      {"architectures", json::array({"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"})},
      {"syscalls",
       json::array(
           {json{{"names", names}, {"action", "SCMP_ACT_ALLOW"}},
            json::parse(
                R"({"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":40,"valueTwo":0,"op":"SCMP_CMP_NE"}]})")})}};
  const std::string sock = b.dir() + "/agent.sock";
  auto policy = CompiledPolicy::LoadFile(PolicyDir() + "/e2e-scalars.yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  FakeAgent agent(sock, *policy);
  ASSERT_TRUE(agent.ok());
  std::ofstream(b.dir() + "/hook.json")
      << json{{"agent_socket", sock}, {"policy_dir", PolicyDir()}}.dump();
  CmdResult hook = RunCmd({HookBinary(), "--config=" + b.dir() + "/hook.json", "precreate"},
                          spec.dump(), absl::Seconds(20));
  ASSERT_EQ(hook.status, 0) << hook.Describe();
  EXPECT_THAT(
      hook.out,
      HasSubstr(
          R"({"names":["socket"],"action":"SCMP_ACT_NOTIFY","args":[{"index":0,"value":40,"valueTwo":0,"op":"SCMP_CMP_NE"}]})"));
  EXPECT_THAT(
      hook.out,
      HasSubstr(
          R"({"names":["unshare"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":268435456,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]})"));
  b.WriteConfig(hook.out);
  CmdResult run =
      b.Run(GetParam(), absl::StrCat("sahk-b-", getpid(), "-", static_cast<int>(GetParam())));
  ASSERT_EQ(run.status, 0) << run.Describe();
  const std::string all = run.out + run.err;
  EXPECT_THAT(all, HasSubstr("END")) << run.Describe();
  EXPECT_THAT(all, HasSubstr("socket: Address family not supported"))
      << run.Describe();  // via the agent
  EXPECT_THAT(all, HasSubstr("unshare(0x10000000): Invalid cross-device link"))
      << run.Describe();  // kernel
  EXPECT_THAT(all, HasSubstr("unshare(0x20000): Operation not permitted"))
      << run.Describe();  // ran: no CAP_SYS_ADMIN
  EXPECT_THAT(all, Not(HasSubstr("Function not implemented"))) << run.Describe();
  EXPECT_THAT(all, HasSubstr("'/dev/shm/keep': Operation not permitted")) << run.Describe();
  std::vector<std::string> seen;
  for (const Notification& n : agent.notifications()) seen.push_back(n.syscall + ":" + n.path);
  const std::string seen_text = absl::StrJoin(seen, " ");
  EXPECT_THAT(seen_text, HasSubstr("socket")) << seen_text;
  EXPECT_THAT(seen_text, HasSubstr("rmdir:/dev/shm/keep")) << seen_text;
  EXPECT_THAT(seen_text, Not(HasSubstr("unshare"))) << seen_text;
}

INSTANTIATE_TEST_SUITE_P(RuncAndCrun, BaseProfileE2eTest,
                         ::testing::Values(Runtime::kRunc, Runtime::kCrun),
                         [](const ::testing::TestParamInfo<Runtime>& i) {
                           return std::string(i.param == Runtime::kRunc ? "runc" : "crun");
                         });

const Scenario kScenarios[] = {
    {"DenyMkdirCompiled",
     "deny-mkdir",
     true,
     "mkdir /dev/shm/a; echo mkdir=$?; rmdir /dev/shm/keep; echo rmdir=$?; echo END",
     {"mkdir=1", "can't create directory '/dev/shm/a': Permission denied",
      "'/dev/shm/keep': Operation not permitted"},
     {"rmdir:/dev/shm/keep"},
     {"mkdir"}},
    {"DenyMkdirThroughAgent",
     "deny-mkdir",
     false,
     "mkdir /dev/shm/a; echo mkdir=$?; rmdir /dev/shm/keep; echo rmdir=$?; echo END",
     {"mkdir=1", "can't create directory '/dev/shm/a': Permission denied",
      "'/dev/shm/keep': Operation not permitted"},
     {"mkdir", "/dev/shm/a", "rmdir:/dev/shm/keep"},
     {}},
    {"PathRuleFirstKeepsMkdirWithAgent",
     "mkdir-path",
     true,
     "mkdir /dev/shm/a; echo a=$?; mkdir /forbidden/x; echo f=$?; echo END",
     {"a=1", "can't create directory '/dev/shm/a': Permission denied",
      "can't create directory '/forbidden/x': Operation not permitted"},
     {"/dev/shm/a", "/forbidden/x"},
     {}},
    {"ScalarsCompiled",
     "e2e-scalars",
     true,
     "arping -c 1 -w 1 -I lo 127.0.0.1; unshare -U true; echo u=$?; rmdir /dev/shm/keep; echo END",
     {"Address family not supported", "Invalid cross-device link", "u=1",
      "'/dev/shm/keep': Operation not permitted"},
     {"rmdir:/dev/shm/keep"},
     {"socket", "unshare"}},
    {"ScalarsThroughAgent",
     "e2e-scalars",
     false,
     "arping -c 1 -w 1 -I lo 127.0.0.1; unshare -U true; echo u=$?; rmdir /dev/shm/keep; echo END",
     {"Address family not supported", "Invalid cross-device link", "u=1",
      "'/dev/shm/keep': Operation not permitted"},
     {"socket", "unshare", "rmdir:/dev/shm/keep"},
     {}},
};

INSTANTIATE_TEST_SUITE_P(RuncAndCrun, RuntimeE2eTest,
                         ::testing::Combine(::testing::Values(Runtime::kRunc, Runtime::kCrun),
                                            ::testing::ValuesIn(kScenarios)),
                         [](const ::testing::TestParamInfo<std::tuple<Runtime, Scenario>>& i) {
                           return absl::StrCat(
                               std::get<0>(i.param) == Runtime::kRunc ? "runc_" : "crun_",
                               std::get<1>(i.param).name);
                         });

}  // namespace
}  // namespace seccomp_agent
