#include "agent/holder/holder.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/common/log.h"
#include "agent/common/proc_text.h"
#include "agent/common/read_file.h"
#include "agent/common/status.h"
#include "agent/common/unix_socket.h"
#include "agent/seccomp/unotify.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::holder {
namespace {

using json = nlohmann::json;

absl::StatusOr<UniqueFd> ConnectTo(const std::string& path) {
  return ConnectUnix(path, SOCK_SEQPACKET);
}

bool PeerAllowed(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  return cred.uid == 0 || cred.uid == geteuid();
}

}  // namespace

std::string HolderKey(const ContainerInfo& info) {
  return absl::StrCat(info.id, "/", info.init_pid);
}

std::string InfoToJson(const ContainerInfo& info) {
  json j = {{"id", info.id},
            {"init_pid", info.init_pid},
            {"bundle", info.bundle},
            {"annotations", info.annotations},
            {"metadata", info.metadata},
            {"runtime", info.runtime},
            {"pod_namespace", info.pod_namespace},
            {"pod_name", info.pod_name},
            {"container_name", info.container_name}};
  return j.dump();
}

absl::StatusOr<ContainerInfo> InfoFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError("info: not a JSON object");
  ContainerInfo info;
  try {
    info.id = j.at("id").get<std::string>();
    info.init_pid = j.at("init_pid").get<pid_t>();
    info.bundle = j.value("bundle", "");
    if (j.contains("annotations")) {
      info.annotations = j["annotations"].get<std::map<std::string, std::string>>();
    }
    info.metadata = j.value("metadata", "");
    info.runtime = j.value("runtime", "");
    info.pod_namespace = j.value("pod_namespace", "");
    info.pod_name = j.value("pod_name", "");
    info.container_name = j.value("container_name", "");
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("info: ", e.what()));
  }
  if (info.id.empty() || info.init_pid <= 0)
    return absl::InvalidArgumentError("info: no id or pid");
  return info;
}

absl::Status SendMessage(int sock, const std::string& text, int fd, int flags) {
  absl::Status s =
      fd >= 0 ? SendWithFds(sock, text, {fd}, flags) : SendWithFds(sock, text, {}, flags);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("holder: ", s.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::pair<std::string, UniqueFd>> RecvMessage(int sock) {
  std::string buf(kMaxMessageBytes, '\0');
  // Room for more than one fd: extra ones are closed (one fd per message).
  auto m = RecvWithFds(sock, absl::MakeSpan(buf), 4);
  if (!m.ok())
    return absl::Status(m.status().code(), absl::StrCat("holder: ", m.status().message()));
  if (m->truncated || m->control_truncated) return absl::DataLossError("holder: message truncated");
  buf.resize(m->bytes);
  UniqueFd fd = m->fds.empty() ? UniqueFd() : std::move(m->fds[0]);
  return std::make_pair(std::move(buf), std::move(fd));
}

std::string WchanOf(pid_t tid) {
  std::string w = ReadFileOrEmpty(AT_FDCWD, absl::StrCat("/proc/", tid, "/wchan"));
  return w.substr(0, w.find('\n'));
}

namespace {
std::string NsOf(pid_t pid) {
  char link[128];
  ssize_t n = readlink(absl::StrCat("/proc/", pid, "/ns/pid").c_str(), link, sizeof(link) - 1);
  return n > 0 ? std::string(link, n) : "";
}
}  // namespace

bool WchanNamesFunctions() {
  // Without kallsyms the kernel has no wchan file at all (6.12); some
  // kernels have one that reads "0".
  if (access("/proc/self/wchan", F_OK) != 0) return false;
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    pid_t tid;
    if (!absl::SimpleAtoi(t.path().filename().string(), &tid)) continue;
    const std::string stat = ReadFileOrEmpty(AT_FDCWD, t.path() / "stat");
    std::vector<absl::string_view> fields = StatFieldsAfterComm(stat);
    if (fields.empty() || fields[0] != "S") continue;
    const std::string w = WchanOf(tid);
    if (!w.empty()) return w != "0";
  }
  return true;  // nothing asleep to tell by: assume it does
}

std::map<pid_t, uint64_t> SeccompWaits(pid_t init_pid) {
  std::map<pid_t, uint64_t> out;
  const std::string ns = NsOf(init_pid);
  if (ns.empty()) return out;
  std::error_code ec;
  for (const auto& p : std::filesystem::directory_iterator("/proc", ec)) {
    pid_t pid;
    if (!absl::SimpleAtoi(p.path().filename().string(), &pid)) continue;
    if (NsOf(pid) != ns) continue;
    std::error_code ec2;
    for (const auto& t : std::filesystem::directory_iterator(p.path() / "task", ec2)) {
      pid_t tid;
      if (!absl::SimpleAtoi(t.path().filename().string(), &tid)) continue;
      if (WchanOf(tid).find("seccomp") == std::string::npos) continue;
      // The task may exit meanwhile: its file then reads as nothing.
      const std::string status = ReadFileOrEmpty(AT_FDCWD, t.path() / "status");
      std::optional<absl::string_view> sw = StatusField(status, "voluntary_ctxt_switches");
      uint64_t n = 0;
      if (sw && absl::SimpleAtoi(*sw, &n)) out[tid] = n;
    }
  }
  return out;
}

std::vector<pid_t> TasksWaitingOnSeccompNotification(pid_t init_pid) {
  std::vector<pid_t> out;
  for (const auto& [tid, switches] : SeccompWaits(init_pid)) out.push_back(tid);
  return out;
}

namespace {
// A pidfd for `pid` if, after it was opened, `pid` is still a process in the
// pid namespace `ns`: a pid recycled before pidfd_open fails the check; one
// recycled after it leaves the pidfd on the dead process, which no signal
// reaches (ESRCH). So a recycled pid is never signalled.
UniqueFd PidfdInNamespace(pid_t pid, const std::string& ns) {
  UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!fd || NsOf(pid) != ns) return UniqueFd();
  return fd;
}

bool SignalPidfd(int pidfd, int sig) {
  return syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0;
}

// /proc/<pid>/stat's state letter ('\0' when unreadable).
char StateOf(pid_t pid) {
  const std::string stat = ReadFileOrEmpty(AT_FDCWD, absl::StrCat("/proc/", pid, "/stat"));
  std::vector<absl::string_view> fields = StatFieldsAfterComm(stat);
  return fields.empty() || fields[0].empty() ? '\0' : fields[0][0];
}

// The thread group ids of `tids`.
std::set<pid_t> ProcessesOf(const std::vector<pid_t>& tids) {
  std::set<pid_t> procs;
  for (pid_t tid : tids) {
    const std::string status = ReadFileOrEmpty(AT_FDCWD, absl::StrCat("/proc/", tid, "/status"));
    std::optional<absl::string_view> tgid_text = StatusField(status, "Tgid");
    int tgid;
    if (tgid_text && absl::SimpleAtoi(*tgid_text, &tgid)) procs.insert(tgid);
  }
  return procs;
}
}  // namespace

int RestartWaitingSyscalls(pid_t init_pid) {
  return RestartSyscalls(init_pid, TasksWaitingOnSeccompNotification(init_pid));
}

int RestartSyscalls(pid_t init_pid, const std::vector<pid_t>& tids) {
  const std::string ns = NsOf(init_pid);
  if (ns.empty()) return 0;
  std::vector<std::pair<pid_t, UniqueFd>> stopped;
  for (pid_t p : ProcessesOf(tids)) {
    UniqueFd fd = PidfdInNamespace(p, ns);
    if (fd && SignalPidfd(fd.get(), SIGSTOP)) stopped.emplace_back(p, std::move(fd));
  }
  // Wait until each is stopped (its wait was interrupted), then continue.
  // A process that died meanwhile: its pidfd polls readable, stop waiting.
  for (const auto& [p, fd] : stopped) {
    for (int i = 0; i < 100 && StateOf(p) != 'T'; ++i) {
      pollfd pf{fd.get(), POLLIN, 0};
      if (poll(&pf, 1, 1) > 0) break;  // exited
    }
  }
  for (const auto& [p, fd] : stopped) SignalPidfd(fd.get(), SIGCONT);
  return static_cast<int>(stopped.size());
}

// ---------------------------------------------------------------- server

absl::StatusOr<std::unique_ptr<HolderServer>> HolderServer::Bind(const std::string& path) {
  auto l = UnixListener::Listen(path, {SOCK_SEQPACKET | SOCK_NONBLOCK, 0600, 16});
  if (l.status().code() == absl::StatusCode::kAlreadyExists) {
    return absl::AlreadyExistsError(absl::StrCat("another holder is listening on ", path));
  }
  if (!l.ok()) return l.status();
  auto h = std::unique_ptr<HolderServer>(new HolderServer());
  h->listener_ = *std::move(l);
  return h;
}

std::string HolderServer::Serve(int stop_fd) {
  std::vector<UniqueFd> clients;
  absl::Time next_path_check = absl::Now() + absl::Seconds(1);
  for (;;) {
    std::vector<pollfd> p;
    p.push_back({stop_fd, POLLIN, 0});
    p.push_back({listener_.fd(), POLLIN, 0});
    for (const auto& c : clients) p.push_back({c.get(), POLLIN, 0});
    std::vector<std::string> keys;
    for (const auto& [key, e] : entries_) {
      keys.push_back(key);
      p.push_back({e.listener.get(), 0, 0});  // only POLLHUP/POLLERR: tasks gone
    }
    int n = poll(p.data(), p.size(), 1000);
    if (n < 0 && errno != EINTR) return absl::StrCat("poll: ", strerror(errno));
    if (absl::Now() >= next_path_check) {
      next_path_check = absl::Now() + absl::Seconds(1);
      if (!listener_.PathStillOurs()) {
        return absl::StrCat("socket ", listener_.path(), " was removed");
      }
    }
    if (n <= 0) continue;
    if (stop_fd >= 0 && (p[0].revents & POLLIN)) return "stopped";
    size_t i = 2;
    std::vector<bool> drop(clients.size(), false);
    for (size_t c = 0; c < clients.size(); ++c, ++i) {
      if (p[i].revents == 0) continue;
      bool close_it = false;
      HandleClient(clients[c].get(), &close_it);
      drop[c] = close_it;
    }
    for (size_t k = 0; k < keys.size(); ++k, ++i) {
      if (p[i].revents & (POLLHUP | POLLERR)) {
        auto it = entries_.find(keys[k]);
        // PUT may have replaced the entry meanwhile: only drop the same fd.
        if (it != entries_.end() && it->second.listener.get() == p[i].fd) {
          spdlog::info("holder: {} dropped: listener hung up (tasks gone)", keys[k]);
          entries_.erase(it);
        }
      }
    }
    std::vector<UniqueFd> kept;
    for (size_t c = 0; c < clients.size(); ++c) {
      if (!drop[c]) kept.push_back(std::move(clients[c]));
    }
    clients = std::move(kept);
    if (quit_requested_) return "the agent stopped with no containers left";
    if (p[1].revents & POLLIN) {
      for (;;) {
        UniqueFd c(accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c) break;
        if (!PeerAllowed(c.get())) {
          spdlog::warn("holder: refused a peer that is not uid 0");
          continue;
        }
        timeval tv{2, 0};  // a client that stops reading cannot stall the holder
        setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        clients.push_back(std::move(c));
      }
    }
    entry_count_.store(entries_.size());
  }
}

void HolderServer::HandleClient(int fd, bool* close_it) {
  auto msg = RecvMessage(fd);
  if (!msg.ok() || msg->first.empty()) {
    *close_it = true;
    return;
  }
  json req = json::parse(msg->first, nullptr, false);
  auto reply_error = [&](const std::string& why) {
    spdlog::warn("holder: bad request: {}", why);
    (void)SendMessage(fd, json{{"ok", false}, {"error", why}}.dump());
  };
  if (req.is_discarded() || !req.is_object() || !req.contains("op") || !req["op"].is_string()) {
    reply_error("not a JSON object with an op");
    return;
  }
  const std::string op = req["op"];
  if (op == "PUT") {
    if (!msg->second || !CheckIsListener(msg->second.get()).ok()) {
      reply_error("PUT without a seccomp listener fd");
      return;
    }
    if (!req.contains("info") || !req["info"].is_object()) {
      reply_error("PUT without info");
      return;
    }
    auto info = InfoFromJson(req["info"].dump());
    if (!info.ok()) {
      reply_error(std::string(info.status().message()));
      return;
    }
    std::string key = HolderKey(*info);
    entries_[key] = Entry{req["info"].dump(), std::move(msg->second)};
    spdlog::info("holder: {} stored ({} entries)", key, entries_.size());
    (void)SendMessage(fd, json{{"ok", true}}.dump());
  } else if (op == "DEL") {
    std::string key = req.value("key", "");
    if (entries_.erase(key) > 0)
      spdlog::info("holder: {} deleted ({} entries)", key, entries_.size());
  } else if (op == "LIST") {
    int count = 0;
    for (const auto& [key, e] : entries_) {
      std::string text = absl::StrCat(R"({"op":"ENTRY","key":)", json(key).dump(), R"(,"info":)",
                                      e.info_json, "}");
      if (!SendMessage(fd, text, e.listener.get()).ok()) {
        *close_it = true;
        return;
      }
      ++count;
    }
    (void)SendMessage(fd, json{{"op", "END"}, {"count", count}}.dump());
    spdlog::info("holder: listed {} entries", count);
  } else if (op == "PING") {
    (void)SendMessage(fd, json{{"ok", true}, {"entries", entries_.size()}}.dump());
  } else if (op == "QUIT_IF_EMPTY") {
    // Decided here, in the single-threaded loop: no PUT can slip between the
    // check and the exit.
    quit_requested_ = entries_.empty();
    (void)SendMessage(fd, json{{"ok", true},
                               {"quit", quit_requested_},
                               {"entries", entries_.size()},
                               {"pid", getpid()}}
                              .dump());
  } else {
    reply_error("unknown op " + op);
  }
}

int RunHolderMain(const std::string& path) {
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  auto h = HolderServer::Bind(path);
  if (!h.ok()) {
    spdlog::error("holder: {}", std::string(h.status().message()));
    return 1;
  }
  spdlog::info("holder: serving {} (pid {})", path, getpid());
  std::string why = (*h)->Serve(-1);
  spdlog::info("holder: exiting: {}", why);
  return 0;
}

absl::Status EnsureHolderRunning(const std::string& path, const std::string& self_exe,
                                 absl::Duration timeout) {
  if (ConnectTo(path).ok()) return absl::OkStatus();
  SA_RETURN_IF_ERROR(MakeParentDirs(path));
  const std::string log_path = path + ".log";
  const std::string flag = "--holder_socket=" + path;  // no malloc after fork
  pid_t child = fork();
  if (child < 0) return ErrnoStatus(errno, "fork");
  if (child == 0) {
    // Detach: new session, then a grandchild that init adopts.
    setsid();
    if (fork() != 0) _exit(0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = open("/dev/null", O_RDWR);
    int logfd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
    }
    dup2(logfd >= 0 ? logfd : devnull, 2);
    syscall(SYS_close_range, 3, ~0U, 0);  // no listener or socket of the agent
    execl(self_exe.c_str(), self_exe.c_str(), "--holder", flag.c_str(), (char*)nullptr);
    _exit(127);
  }
  int st;
  while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (ConnectTo(path).ok()) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("holder did not answer on ", path, " (see ", log_path, ")"));
}

// ---------------------------------------------------------------- client

absl::StatusOr<std::unique_ptr<HolderClient>> HolderClient::Connect(const std::string& path) {
  SA_ASSIGN_OR_RETURN(UniqueFd s, ConnectTo(path));
  auto c = std::unique_ptr<HolderClient>(new HolderClient());
  c->path_ = path;
  c->sock_ = std::move(s);
  c->watcher_ = std::thread([p = c.get()] { p->Watch(); });
  return c;
}

HolderClient::~HolderClient() {
  {
    std::lock_guard<std::mutex> l(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

void HolderClient::MarkGone(const std::string& why) {
  if (alive_.exchange(false)) {
    spdlog::warn("holder gone: restarts will lose containers ({}: {})", path_, why);
  }
}

void HolderClient::Watch() {
  std::unique_lock<std::mutex> l(stop_mu_);
  while (!stop_) {
    stop_cv_.wait_for(l, std::chrono::milliseconds(500));
    if (stop_) break;
    std::lock_guard<std::mutex> m(mu_);
    if (!alive_) continue;
    // Between requests nothing is unread, so readable means hang-up.
    pollfd p{sock_.get(), POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLIN))) {
      MarkGone("connection closed");
    }
  }
}

absl::StatusOr<HolderClient::Message> HolderClient::Receive(const char* op) {
  auto msg = RecvMessage(sock_.get());
  if (!msg.ok() || msg->first.empty()) {
    MarkGone(msg.ok() ? absl::StrCat("EOF during ", op) : std::string(msg.status().message()));
    return absl::UnavailableError(absl::StrCat("holder gone during ", op));
  }
  return msg;
}

absl::StatusOr<HolderClient::Message> HolderClient::Exchange(const char* op,
                                                             const std::string& text, int fd) {
  if (!alive_) return absl::UnavailableError("holder gone");
  if (absl::Status s = SendMessage(sock_.get(), text, fd); !s.ok()) {
    MarkGone(std::string(s.message()));
    return s;
  }
  return Receive(op);
}

absl::StatusOr<std::vector<HolderClient::Stored>> HolderClient::List() {
  std::lock_guard<std::mutex> m(mu_);
  SA_ASSIGN_OR_RETURN(Message msg, Exchange("LIST", R"({"op":"LIST"})"));
  std::vector<Stored> out;
  for (;;) {
    nlohmann::json j = nlohmann::json::parse(msg.first, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return absl::DataLossError("holder: bad LIST reply");
    std::string op = j.value("op", "");
    if (op == "END") break;
    if (op != "ENTRY" || !msg.second || !j.contains("info")) {
      spdlog::warn("holder: skipping a bad LIST entry: {}", msg.first);
    } else if (auto info = InfoFromJson(j["info"].dump()); !info.ok()) {
      spdlog::warn("holder: skipping a LIST entry: {}", std::string(info.status().message()));
    } else {
      out.push_back(Stored{j.value("key", ""), *std::move(info), std::move(msg.second)});
    }
    SA_ASSIGN_OR_RETURN(msg, Receive("LIST"));
  }
  return out;
}

absl::StatusOr<nlohmann::json> HolderClient::Request(const char* op, const std::string& text,
                                                     int fd) {
  SA_ASSIGN_OR_RETURN(Message msg, Exchange(op, text, fd));
  nlohmann::json j = nlohmann::json::parse(msg.first, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.value("ok", false)) {
    return absl::InternalError(absl::StrCat("holder refused ", op, ": ", msg.first));
  }
  return j;
}

absl::Status HolderClient::Put(const ContainerInfo& info, int listener) {
  std::lock_guard<std::mutex> m(mu_);
  std::string text = absl::StrCat(R"({"op":"PUT","key":)", nlohmann::json(HolderKey(info)).dump(),
                                  R"(,"info":)", InfoToJson(info), "}");
  return Request("PUT", text, listener).status();
}

absl::StatusOr<HolderClient::QuitReply> HolderClient::QuitIfEmpty() {
  std::lock_guard<std::mutex> m(mu_);
  SA_ASSIGN_OR_RETURN(nlohmann::json j, Request("QUIT_IF_EMPTY", R"({"op":"QUIT_IF_EMPTY"})"));
  QuitReply r{j.value("quit", false), j.value("entries", size_t{0}), j.value("pid", 0)};
  if (r.quit) alive_.store(false);  // it exits: not "gone" (no warning)
  return r;
}

void HolderClient::OnCleanStop() {
  auto r = QuitIfEmpty();
  if (!r.ok()) return;  // gone already (warned once then)
  if (r->quit) {
    spdlog::info("holder: no containers left; the holder (pid {}) exits", r->pid);
    return;
  }
  spdlog::info(
      "holder: keeps {} container(s) (pid {}, {}): their trapped syscalls wait for the next "
      "agent; to release them without one, stop the holder (kill {}), then they fail with "
      "ENOSYS",
      r->entries, r->pid, path_, r->pid);
}

void HolderClient::Del(const ContainerInfo& info) {
  std::lock_guard<std::mutex> m(mu_);
  if (!alive_) return;
  std::string text = nlohmann::json{{"op", "DEL"}, {"key", HolderKey(info)}}.dump();
  absl::Status s = SendMessage(sock_.get(), text, -1, MSG_DONTWAIT);
  if (!s.ok() && ErrnoOf(s) != EAGAIN) MarkGone(std::string(s.message()));
}

}  // namespace seccomp_agent::holder
