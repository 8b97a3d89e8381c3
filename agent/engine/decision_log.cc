#include "agent/engine/decision_log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/status.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent {

absl::StatusOr<std::unique_ptr<DecisionLog>> DecisionLog::Open(const std::string& path) {
  if (path == "-") return std::unique_ptr<DecisionLog>(new DecisionLog(stdout, false));
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open decision log ", path));
  FILE* f = fdopen(fd, "a");
  if (f == nullptr) {
    ::close(fd);
    return ErrnoStatus(errno, "fdopen decision log");
  }
  return std::unique_ptr<DecisionLog>(new DecisionLog(f, true));
}

DecisionLog::~DecisionLog() {
  if (owned_) {
    fclose(f_);
  } else {
    fflush(f_);
  }
}

std::string DecisionLog::Format(const DecisionRecord& r) {
  const SyscallEvent& ev = *r.event;
  nlohmann::json j;
  j["time"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone());
  j["container"] = ev.container ? ev.container->id : "";
  j["pid"] = ev.pid;
  j["syscall"] = ev.syscall;
  nlohmann::json args = nlohmann::json::object();
  // nlohmann rejects invalid UTF-8 on dump; paths and bytes are task data.
  auto text = [](const std::string& s) {
    return nlohmann::json(s);
  };
  if (ev.path) args["path"] = text(*ev.path);
  if (ev.path2) args["path2"] = text(*ev.path2);
  if (ev.abs_path) args["abs_path"] = text(*ev.abs_path);
  if (ev.abs_path2) args["abs_path2"] = text(*ev.abs_path2);
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
  j["rule"] = r.rule;
  j["action"] = r.action;
  j["result"] = r.result;
  if (!r.backend.empty()) j["backend"] = r.backend;
  j["latency_ns"] = r.latency_ns;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void DecisionLog::Write(const DecisionRecord& r) {
  std::string line = Format(r);
  line.push_back('\n');
  std::lock_guard<std::mutex> lock(mu_);
  fwrite(line.data(), 1, line.size(), f_);
  fflush(f_);
}

}  // namespace seccomp_agent
