// A child process with captured stdout/stderr, for integration tests.
// Output is read by background threads line by line, each line stamped with
// its arrival time, so a test can wait for a line (with a deadline) while the
// process keeps running, and measure how long a workload took from outside.
#ifndef SECCOMP_AGENT_INTEGRATION_HARNESS_SUBPROCESS_H_
#define SECCOMP_AGENT_INTEGRATION_HARNESS_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace seccomp_agent::integration {

struct OutputLine {
  absl::Time when;
  std::string text;  // without the newline
};

// How a process ended.
struct ExitInfo {
  bool timed_out = false;  // we killed it after the deadline
  int exit_code = -1;      // valid when signal == 0
  int signal = 0;          // terminating signal, 0 if it exited
  std::string ToString() const;
};

struct ProcessResult {
  ExitInfo exit;
  std::string out;
  std::string err;
  absl::Duration elapsed;
  // "exit 0, stdout: ..., stderr: ..." for assertion messages.
  std::string Describe() const;
};

class Subprocess {
 public:
  // Starts argv[0] (PATH lookup) in its own process group with stdin on
  // /dev/null. The child gets SIGKILL if the test process dies.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv);
  ~Subprocess();  // SIGKILLs the process group if still running, reaps it.

  pid_t pid() const { return pid_; }

  // Waits until a line of stdout (or stderr) contains `needle`; returns the
  // line, or nullopt after `timeout` or when the stream ended without it.
  std::optional<OutputLine> WaitForStdout(const std::string& needle, absl::Duration timeout);
  std::optional<OutputLine> WaitForStderr(const std::string& needle, absl::Duration timeout);
  // Waits until `count` lines of stderr contain `needle`.
  bool WaitForStderrCount(const std::string& needle, int count, absl::Duration timeout);

  std::vector<OutputLine> StdoutLines();
  std::vector<OutputLine> StderrLines();
  std::string StdoutText();
  std::string StderrText();

  // Sends `sig` to the process (not the group).
  void Signal(int sig);
  // Waits for exit; after `timeout` SIGKILLs the process group and reports
  // timed_out. Also waits for the output threads to drain.
  ExitInfo Wait(absl::Duration timeout);
  bool exited();

 private:
  struct Stream {
    absl::Mutex mu;
    std::vector<OutputLine> lines;
    std::string partial;
    bool closed = false;
  };
  Subprocess() = default;
  static void Pump(int fd, Stream* s);
  static std::optional<OutputLine> WaitFor(Stream* s, const std::string& needle, int count,
                                           absl::Duration timeout);
  static std::vector<OutputLine> Snapshot(Stream* s);
  void Reap(bool block);

  pid_t pid_ = -1;
  absl::Mutex wait_mu_;
  std::optional<ExitInfo> exit_;
  Stream out_, err_;
  std::thread out_thread_, err_thread_;
};

// Runs argv to completion (or the timeout) and captures everything.
ProcessResult RunProcess(const std::vector<std::string>& argv, absl::Duration timeout);

}  // namespace seccomp_agent::integration

#endif  // SECCOMP_AGENT_INTEGRATION_HARNESS_SUBPROCESS_H_
