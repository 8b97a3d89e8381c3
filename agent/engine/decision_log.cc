#include "agent/engine/decision_log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/log.h"
#include "agent/common/status.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent {

namespace {

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::string NowText() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone());
}

absl::StatusOr<UniqueFd> OpenForAppend(const std::string& path, int extra_flags) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | extra_flags, 0640));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open decision log ", path));
  return fd;
}

// Writes all of `s` (a pipe may take it in parts); false on error.
bool WriteAll(int fd, absl::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    s.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DecisionLog>> DecisionLog::Open(const std::string& path,
                                                               const DecisionLogOptions& opts) {
  if (opts.keep < 0 || opts.keep > kMaxKeep) {
    return absl::InvalidArgumentError(
        absl::StrCat("decision log: keep ", opts.keep, " is not in 0..", kMaxKeep));
  }
  if (opts.rate_bytes < 0) {
    return absl::InvalidArgumentError("decision log: the rate must not be negative");
  }
  if (path == "-") {
    return std::unique_ptr<DecisionLog>(new DecisionLog(path, UniqueFd(), 0, opts));
  }
  SA_ASSIGN_OR_RETURN(UniqueFd fd, OpenForAppend(path, 0));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "fstat decision log");
  return std::unique_ptr<DecisionLog>(
      new DecisionLog(path, std::move(fd), static_cast<uint64_t>(st.st_size), opts));
}

DecisionLog::DecisionLog(const std::string& path, UniqueFd file, uint64_t size,
                         const DecisionLogOptions& opts)
    : path_(path), to_stdout_(path == "-"), opts_(opts), file_(std::move(file)), size_(size) {
  if (opts_.rate_bytes > 0) reporter_ = std::thread([this] { ReportLoop(); });
}

DecisionLog::~DecisionLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (reporter_.joinable()) reporter_.join();
  std::lock_guard<std::mutex> lock(mu_);
  ReportDropped(MonoNs());
}

uint64_t DecisionLog::dropped_lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_total_;
}

uint64_t DecisionLog::rotations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rotations_;
}

std::string PolicyLabel(absl::string_view name, uint64_t version) {
  return name.empty() ? std::string() : absl::StrCat(name, "@", version);
}

std::string DecisionLog::Format(const DecisionRecord& r) {
  const SyscallEvent& ev = *r.event;
  nlohmann::json j;
  j["time"] = NowText();
  j["container"] = ev.container ? ev.container->id : "";
  j["pid"] = ev.pid;
  j["syscall"] = ev.syscall;
  nlohmann::json args = nlohmann::json::object();
  // nlohmann rejects invalid UTF-8 on dump; paths and bytes are task data.
  auto text = [](const std::string& s) { return nlohmann::json(s); };
  if (ev.path) args["path"] = text(*ev.path);
  if (ev.path2) args["path2"] = text(*ev.path2);
  if (ev.abs_path) args["resolved_path"] = text(*ev.abs_path);
  if (ev.abs_path2) args["resolved_path2"] = text(*ev.abs_path2);
  if (ev.dirfd) args["dirfd"] = *ev.dirfd;
  if (ev.fd) args["fd"] = *ev.fd;
  if (ev.write_count) args["count"] = *ev.write_count;
  if (ev.write_bytes) args["bytes"] = text(*ev.write_bytes);
  if (ev.sockaddr) {
    nlohmann::json sa;
    sa["family"] = ev.sockaddr->family == AF_INET    ? "AF_INET"
                   : ev.sockaddr->family == AF_INET6 ? "AF_INET6"
                   : ev.sockaddr->family == AF_UNIX  ? "AF_UNIX"
                                                     : std::to_string(ev.sockaddr->family);
    sa["address"] = text(ev.sockaddr->address);
    if (ev.sockaddr->port) sa["port"] = *ev.sockaddr->port;
    args["sockaddr"] = sa;
  }
  if (!ev.decode_error.empty()) args["decode_error"] = ev.decode_error;
  if (args.empty()) {
    nlohmann::json raw = nlohmann::json::array();
    for (uint64_t a : ev.args) raw.push_back(a);
    args["raw"] = raw;
  }
  j["args"] = std::move(args);
  if (!r.policy_name.empty()) j["policy"] = PolicyLabel(r.policy_name, r.policy_version);
  j["rule"] = std::string(r.rule);
  j["action"] = r.action;
  j["result"] = r.result;
  if (!r.backend.empty()) j["backend"] = std::string(r.backend);
  j["latency_ns"] = r.latency_ns;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void DecisionLog::Write(const DecisionRecord& r) {
  std::string line = Format(r);
  line.push_back('\n');
  const SyscallEvent& ev = *r.event;
  static const std::string kNoContainer;
  const std::string& container = ev.container ? ev.container->id : kNoContainer;
  std::lock_guard<std::mutex> lock(mu_);
  if (opts_.rate_bytes > 0 && !Admit(container, line.size(), MonoNs())) return;
  Append(line);
}

bool DecisionLog::Admit(const std::string& container, size_t bytes, int64_t now_ns) {
  auto [it, added] = budgets_.try_emplace(container);
  Budget& b = it->second;
  if (added) {
    const double burst = std::max(4 * opts_.rate_bytes, kMinBurstBytes);
    b.bucket = TokenBucket(opts_.rate_bytes, burst, now_ns);
  }
  b.last_ns = now_ns;
  if (b.bucket.Take(now_ns, static_cast<double>(bytes))) return true;
  b.dropped++;
  b.dropped_bytes += bytes;
  dropped_total_++;
  return false;
}

void DecisionLog::Append(const std::string& line) {
  if (!to_stdout_ && opts_.max_bytes > 0 && size_ + line.size() > opts_.max_bytes) {
    if (line.size() > opts_.max_bytes) {
      dropped_total_++;
      return;
    }
    Rotate();
  }
  if (!to_stdout_ && !file_.valid() && MonoNs() >= reopen_after_ns_) Rotate();
  int fd = out_fd();
  if (fd < 0 || !WriteAll(fd, line)) {
    dropped_total_++;
    return;
  }
  size_ += line.size();
}

// PATH.keep-1 -> PATH.keep, ..., PATH -> PATH.1, then a new PATH. On failure
// the log stays closed (lines are dropped and counted) and the next attempt
// waits a second, so a full disk costs one try per second.
void DecisionLog::Rotate() {
  file_.reset();
  size_ = 0;
  absl::Status s = ShiftRotated();
  if (s.ok()) {
    auto fd = OpenForAppend(path_, O_TRUNC);
    if (fd.ok()) {
      file_ = std::move(*fd);
      rotations_++;
      return;
    }
    s = fd.status();
  }
  reopen_after_ns_ = MonoNs() + 1000000000;
  spdlog::error("decision log {}: rotation failed, dropping lines until it works: {}", path_,
                std::string(s.message()));
}

absl::Status DecisionLog::ShiftRotated() const {
  for (int i = opts_.keep; i >= 1; --i) {
    std::string from = i == 1 ? path_ : absl::StrCat(path_, ".", i - 1);
    std::string to = absl::StrCat(path_, ".", i);
    if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("rename ", from, " to ", to));
    }
  }
  return absl::OkStatus();
}

void DecisionLog::ReportDropped(int64_t now_ns) {
  const int64_t idle_ns = absl::ToInt64Nanoseconds(absl::Seconds(60));
  for (auto it = budgets_.begin(); it != budgets_.end();) {
    Budget& b = it->second;
    if (b.dropped > 0) {
      nlohmann::json j;
      j["time"] = NowText();
      j["container"] = it->first;
      j["dropped"] = b.dropped;
      j["dropped_bytes"] = b.dropped_bytes;
      j["reason"] = "rate-limit";
      Append(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
      b.dropped = 0;
      b.dropped_bytes = 0;
    }
    if (now_ns - b.last_ns > idle_ns) {
      budgets_.erase(it++);  // full again long since: forget it
    } else {
      ++it;
    }
  }
}

void DecisionLog::ReportLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    stop_cv_.wait_for(lock, absl::ToChronoNanoseconds(opts_.report_interval));
    if (!stop_) ReportDropped(MonoNs());
  }
}

}  // namespace seccomp_agent
