#include "integration/harness/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/fd.h"
#include "agent/common/status.h"

namespace seccomp_agent::integration {

std::string ExitInfo::ToString() const {
  if (timed_out) return "timed out (killed)";
  if (signal != 0) return absl::StrCat("killed by signal ", signal);
  return absl::StrCat("exit ", exit_code);
}

std::string ProcessResult::Describe() const {
  return absl::StrCat(exit.ToString(), " after ", absl::FormatDuration(elapsed),
                      "\n--- stdout ---\n", out, "--- stderr ---\n", err, "---");
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (pipe2(err, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  UniqueFd err_r(err[0]), err_w(err[1]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork");
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_w.get(), 1);
    dup2(err_w.get(), 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvp(args[0], args.data());
    const char msg[] = "exec failed\n";
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent: no race with an early Signal()
  auto p = std::unique_ptr<Subprocess>(new Subprocess());
  p->pid_ = pid;
  out_w.reset();
  err_w.reset();
  int ofd = out_r.release(), efd = err_r.release();
  Stream* os = &p->out_;
  Stream* es = &p->err_;
  p->out_thread_ = std::thread([ofd, os] { Pump(ofd, os); });
  p->err_thread_ = std::thread([efd, es] { Pump(efd, es); });
  return p;
}

Subprocess::~Subprocess() {
  if (!exited()) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
  }
  Wait(absl::Seconds(10));
  if (out_thread_.joinable()) out_thread_.join();
  if (err_thread_.joinable()) err_thread_.join();
}

void Subprocess::Pump(int fd, Stream* s) {
  UniqueFd owned(fd);
  char buf[16384];
  while (true) {
    {
      absl::MutexLock l(&s->mu);
      if (s->closed) break;  // Wait() gave up on a descendant holding the pipe
    }
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 100);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) continue;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    absl::Time now = absl::Now();
    absl::MutexLock l(&s->mu);
    if (n <= 0) {
      if (!s->partial.empty()) s->lines.push_back({now, std::move(s->partial)});
      s->partial.clear();
      s->closed = true;
      break;
    }
    s->partial.append(buf, n);
    size_t pos;
    while ((pos = s->partial.find('\n')) != std::string::npos) {
      s->lines.push_back({now, s->partial.substr(0, pos)});
      s->partial.erase(0, pos + 1);
    }
  }
}

std::optional<OutputLine> Subprocess::WaitFor(Stream* s, const std::string& needle, int count,
                                              absl::Duration timeout) {
  struct Progress {
    Stream* s;
    size_t seen;
  };
  absl::MutexLock l(&s->mu);
  const absl::Time deadline = absl::Now() + timeout;
  Progress progress{s, 0};
  int found = 0;
  while (true) {
    for (; progress.seen < s->lines.size(); ++progress.seen) {
      if (s->lines[progress.seen].text.find(needle) != std::string::npos && ++found >= count) {
        return s->lines[progress.seen];
      }
    }
    if (s->closed || absl::Now() >= deadline) return std::nullopt;
    s->mu.AwaitWithDeadline(
        absl::Condition(
            +[](Progress* p) { return p->s->closed || p->s->lines.size() > p->seen; }, &progress),
        deadline);
  }
}

std::optional<OutputLine> Subprocess::WaitForStdout(const std::string& needle,
                                                    absl::Duration timeout) {
  return WaitFor(&out_, needle, 1, timeout);
}
std::optional<OutputLine> Subprocess::WaitForStderr(const std::string& needle,
                                                    absl::Duration timeout) {
  return WaitFor(&err_, needle, 1, timeout);
}
bool Subprocess::WaitForStderrCount(const std::string& needle, int count, absl::Duration timeout) {
  return WaitFor(&err_, needle, count, timeout).has_value();
}

std::vector<OutputLine> Subprocess::Snapshot(Stream* s) {
  absl::MutexLock l(&s->mu);
  std::vector<OutputLine> v = s->lines;
  if (!s->partial.empty()) v.push_back({absl::Now(), s->partial});
  return v;
}
std::vector<OutputLine> Subprocess::StdoutLines() { return Snapshot(&out_); }
std::vector<OutputLine> Subprocess::StderrLines() { return Snapshot(&err_); }

static std::string Join(const std::vector<OutputLine>& lines) {
  std::string s;
  for (const auto& l : lines) absl::StrAppend(&s, l.text, "\n");
  return s;
}
std::string Subprocess::StdoutText() { return Join(StdoutLines()); }
std::string Subprocess::StderrText() { return Join(StderrLines()); }

void Subprocess::Signal(int sig) {
  if (!exited()) kill(pid_, sig);
}

void Subprocess::Reap(bool block) {
  absl::MutexLock l(&wait_mu_);
  if (exit_.has_value()) return;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return;
  ExitInfo e;
  if (WIFEXITED(status)) {
    e.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    e.signal = WTERMSIG(status);
  }
  exit_ = e;
}

bool Subprocess::exited() {
  Reap(false);
  absl::MutexLock l(&wait_mu_);
  return exit_.has_value();
}

ExitInfo Subprocess::Wait(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  while (!exited()) {
    if (absl::Now() >= deadline) {
      timed_out = true;
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      Reap(true);
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  // Give the output a moment to drain; a descendant that inherited the pipe
  // (a container still running) must not hang us.
  for (Stream* s : {&out_, &err_}) {
    absl::MutexLock l(&s->mu);
    s->mu.AwaitWithTimeout(absl::Condition(&s->closed), absl::Seconds(2));
    s->closed = true;
  }
  if (out_thread_.joinable()) out_thread_.join();
  if (err_thread_.joinable()) err_thread_.join();
  absl::MutexLock l(&wait_mu_);
  if (timed_out && exit_.has_value()) exit_->timed_out = true;
  return exit_.value_or(ExitInfo{true, -1, SIGKILL});
}

ProcessResult RunProcess(const std::vector<std::string>& argv, absl::Duration timeout) {
  ProcessResult r;
  absl::Time start = absl::Now();
  auto p = Subprocess::Start(argv);
  if (!p.ok()) {
    r.exit.exit_code = 127;
    r.err = std::string(p.status().message());
    return r;
  }
  r.exit = (*p)->Wait(timeout);
  r.elapsed = absl::Now() - start;
  r.out = (*p)->StdoutText();
  r.err = (*p)->StderrText();
  return r;
}

}  // namespace seccomp_agent::integration
