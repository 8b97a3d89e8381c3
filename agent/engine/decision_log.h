// The decision log: one JSON object per line per decision (time, container,
// pid, syscall, decoded args, rule, action, result, latency). Thread-safe.
//
// Bounded, because a container chooses how much it writes: a task trapping
// openat with 4000-byte paths made ~16 MB/s of log. Two caps, both on by
// default:
//  - a per-container byte rate (file and stdout): a container's lines beyond
//    its bucket are dropped, counted, and reported once per report interval
//    as {"time","container","dropped","dropped_bytes","reason":"rate-limit"};
//    per container so a flood never drops another container's lines;
//  - size-based rotation (file only): when the next line would take the file
//    past `max_bytes` it becomes PATH.1 (PATH.1 becomes PATH.2, ... up to
//    `keep`) and a new PATH is started, so the disk use is at most
//    (keep + 1) * max_bytes.
// A line that cannot be written (rotation or write failed) is dropped and
// counted too; the log never blocks on a failing file.
#ifndef SECCOMP_AGENT_ENGINE_DECISION_LOG_H_
#define SECCOMP_AGENT_ENGINE_DECISION_LOG_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/fd.h"
#include "agent/engine/token_bucket.h"
#include "agent/model/event.h"

namespace seccomp_agent {

// "NAME@VERSION" of a named policy; "" for the unnamed one.
std::string PolicyLabel(absl::string_view name, uint64_t version);

struct DecisionRecord {
  const SyscallEvent* event = nullptr;
  // The policy that decided (the log shows PolicyLabel of them); valid,
  // like `rule`, only while the record is being recorded.
  absl::string_view policy_name;  // "" unnamed
  uint64_t policy_version = 0;
  std::string action;  // "allow", "deny", "return", "log", ...
  std::string result;  // "continue", "EPERM", "0", "task-gone", ...
  // Like `event`, valid only while the record is being recorded: they point
  // into the policy, the handler's outcome or its labels (a decision
  // allocates no copy of a rule name or a plugin's label).
  absl::string_view rule;     // rule name, "default" or "runtime-init"
  absl::string_view backend;  // injector backend, "plugin:NAME (cached)", ..., else ""
  int64_t latency_ns = 0;     // from NOTIF_RECV to the reply
};

struct DecisionLogOptions {
  // File only: rotate when the next line would take the file past this
  // size. 0: never rotate. A line longer than this is dropped.
  uint64_t max_bytes = uint64_t{100} << 20;
  // Rotated files kept (PATH.1 .. PATH.keep); 0 truncates PATH instead.
  int keep = 1;
  // Bytes per second one container's lines may take (file and stdout).
  // 0: no limit. The bucket holds max(4 s of rate, kMinBurstBytes), so
  // every possible line (at most ~200 KiB) fits into a full one.
  double rate_bytes = 1 << 20;
  // How often pending dropped counts are written.
  absl::Duration report_interval = absl::Seconds(1);
};

class DecisionLog {
 public:
  static constexpr double kMinBurstBytes = 1 << 20;
  static constexpr int kMaxKeep = 100;

  // "-" is stdout; otherwise the file is opened for appending (0640).
  static absl::StatusOr<std::unique_ptr<DecisionLog>> Open(
      const std::string& path, const DecisionLogOptions& opts = DecisionLogOptions());
  ~DecisionLog();  // writes the dropped counts still pending

  void Write(const DecisionRecord& r);
  // The JSON line (without newline) Write() would append; for tests.
  static std::string Format(const DecisionRecord& r);

  // Totals since Open (for metrics): lines dropped by the rate limit and by
  // failed writes or rotations, and rotations done.
  uint64_t dropped_lines() const;
  uint64_t rotations() const;

 private:
  struct Budget {
    TokenBucket bucket;
    int64_t last_ns = 0;
    uint64_t dropped = 0;  // lines not yet reported
    uint64_t dropped_bytes = 0;
  };

  DecisionLog(const std::string& path, UniqueFd file, uint64_t size,
              const DecisionLogOptions& opts);
  int out_fd() const { return file_.valid() ? file_.get() : (to_stdout_ ? 1 : -1); }
  bool Admit(const std::string& container, size_t bytes, int64_t now_ns);  // mu_ held
  void Append(const std::string& line);                                    // mu_ held
  void Rotate();                                                           // mu_ held
  absl::Status ShiftRotated() const;
  void ReportDropped(int64_t now_ns);  // mu_ held
  void ReportLoop();

  const std::string path_;
  const bool to_stdout_;
  const DecisionLogOptions opts_;
  mutable std::mutex mu_;
  UniqueFd file_;      // invalid for stdout, and after a failed rotation
  uint64_t size_ = 0;  // bytes in the live file
  int64_t reopen_after_ns_ = 0;
  uint64_t dropped_total_ = 0;
  uint64_t rotations_ = 0;
  absl::flat_hash_map<std::string, Budget> budgets_;  // by container id
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread reporter_;  // only with a rate limit
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_ENGINE_DECISION_LOG_H_
