#include "oci-hook/hook_protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/status.h"
#include "agent/common/unix_socket.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::hook {
namespace {

using json = nlohmann::ordered_json;

constexpr int64_t kPidMaxLimit = 4194304;
constexpr size_t kMaxIdBytes = 1024;

// Parses strictly: one JSON value, duplicate keys refused.
absl::StatusOr<json> ParseStrict(absl::string_view text, absl::string_view what) {
  std::vector<std::set<std::string>> keys;
  std::string dup;
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == json::parse_event_t::key && !keys.empty()) {
      const std::string k = parsed.get<std::string>();
      if (!keys.back().insert(k).second && dup.empty()) dup = k;
    }
    return true;
  };
  try {
    json j = json::parse(text.begin(), text.end(), cb);
    if (!dup.empty())
      return absl::InvalidArgumentError(absl::StrCat(what, ": duplicate key \"", dup, "\""));
    return j;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", e.what()));
  }
}

bool HasControlChars(absl::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

int RemainingMs(absl::Time deadline) {
  const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  return ms < 0 ? 0 : static_cast<int>(ms > 60000 ? 60000 : ms);
}

// Writes all of `data` before `deadline`.
absl::Status WriteAll(int fd, absl::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    struct pollfd p = {fd, POLLOUT, 0};
    int r = poll(&p, 1, RemainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus(errno, "poll");
    if (r == 0) return absl::DeadlineExceededError("write: timed out");
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return ErrnoStatus(errno, "send");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Reads up to and including the first "\n" (returned without it).
absl::StatusOr<std::string> ReadLine(int fd, absl::Time deadline) {
  std::string buf;
  char chunk[4096];
  for (;;) {
    size_t nl = buf.find('\n');
    if (nl != std::string::npos) return buf.substr(0, nl);
    if (buf.size() > kMaxHookLineBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("line longer than ", kMaxHookLineBytes, " bytes"));
    }
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, RemainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus(errno, "poll");
    if (r == 0) return absl::DeadlineExceededError("read: timed out waiting for a line");
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return ErrnoStatus(errno, "recv");
    if (n == 0) {
      if (buf.empty()) return absl::UnavailableError("connection closed before a line arrived");
      return absl::InvalidArgumentError("connection closed in the middle of a line (no \"\\n\")");
    }
    buf.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace

const char* HookOpName(HookOp op) {
  return op == HookOp::kCreateRuntime ? "createRuntime" : "poststop";
}

absl::StatusOr<HookRequest> ParseHookRequest(absl::string_view line) {
  if (line.size() > kMaxHookLineBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request longer than ", kMaxHookLineBytes, " bytes"));
  }
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (line.find('\n') != absl::string_view::npos) {
    return absl::InvalidArgumentError("request must be one line");
  }
  SA_ASSIGN_OR_RETURN(json j, ParseStrict(line, "request"));
  if (!j.is_object()) return absl::InvalidArgumentError("request: expected a JSON object");
  HookRequest r;
  auto op = j.find("op");
  if (op == j.end() || !op->is_string()) {
    return absl::InvalidArgumentError(
        "request: op: required string \"createRuntime\" or \"poststop\"");
  }
  // "prestart": what earlier hooks sent for the same message.
  if (*op == "createRuntime" || *op == "prestart") {
    r.op = HookOp::kCreateRuntime;
  } else if (*op == "poststop") {
    r.op = HookOp::kPoststop;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("request: op: unknown op ", op->dump(), " (createRuntime or poststop)"));
  }
  auto id = j.find("id");
  if (id == j.end() || !id->is_string())
    return absl::InvalidArgumentError("request: id: required string");
  r.id = id->get<std::string>();
  if (r.id.empty() || r.id.size() > kMaxIdBytes || HasControlChars(r.id)) {
    return absl::InvalidArgumentError(
        "request: id: must be 1..1024 bytes without control characters");
  }
  auto pid = j.find("pid");
  if (pid != j.end()) {
    if (!pid->is_number_integer())
      return absl::InvalidArgumentError("request: pid: expected an integer");
    const bool neg = pid->is_number_unsigned() ? false : pid->get<int64_t>() < 0;
    const uint64_t v = neg ? 0 : pid->get<uint64_t>();
    if (neg || v > static_cast<uint64_t>(kPidMaxLimit)) {
      return absl::InvalidArgumentError(absl::StrCat("request: pid: must be 0..", kPidMaxLimit));
    }
    r.pid = static_cast<int64_t>(v);
  }
  if (r.op == HookOp::kCreateRuntime && r.pid <= 0) {
    return absl::InvalidArgumentError(
        "request: pid: createRuntime needs the container's host pid (> 0)");
  }
  auto bundle = j.find("bundle");
  if (bundle != j.end()) {
    if (!bundle->is_string())
      return absl::InvalidArgumentError("request: bundle: expected a string");
    r.bundle = bundle->get<std::string>();
  }
  auto ann = j.find("annotations");
  if (ann != j.end() && !ann->is_null()) {
    if (!ann->is_object())
      return absl::InvalidArgumentError("request: annotations: expected an object");
    for (auto it = ann->begin(); it != ann->end(); ++it) {
      if (!it.value().is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("request: annotations[\"", it.key(), "\"]: expected a string"));
      }
      r.annotations[it.key()] = it.value().get<std::string>();
    }
  }
  return r;
}

std::string FormatHookRequest(const HookRequest& r) {
  json j;
  j["op"] = HookOpName(r.op);
  j["id"] = r.id;
  j["pid"] = r.pid;
  j["bundle"] = r.bundle;
  json a = json::object();
  for (const auto& [k, v] : r.annotations) a[k] = v;
  j["annotations"] = std::move(a);
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string FormatHookReply(const absl::Status& status) {
  json j;
  j["ok"] = status.ok();
  if (!status.ok()) j["error"] = std::string(status.message());
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

absl::Status ParseHookReply(absl::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  auto j = ParseStrict(line, "agent reply");
  if (!j.ok()) return j.status();
  auto ok = j->is_object() ? j->find("ok") : j->end();
  if (!j->is_object() || ok == j->end() || !ok->is_boolean()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "agent reply: expected {\"ok\":true|false}, got ", std::string(line.substr(0, 200))));
  }
  if (ok->get<bool>()) return absl::OkStatus();
  auto err = j->find("error");
  return absl::FailedPreconditionError(
      absl::StrCat("agent refused: ",
                   err != j->end() && err->is_string() ? err->get<std::string>() : "(no reason)"));
}

std::string ListenerMetadataFor(absl::string_view policy) {
  return absl::StrCat(kListenerMetadataPrefix, policy);
}

std::optional<std::string> PolicyFromListenerMetadata(absl::string_view metadata) {
  if (!absl::StartsWith(metadata, kListenerMetadataPrefix)) return std::nullopt;
  metadata.remove_prefix(strlen(kListenerMetadataPrefix));
  if (metadata.empty()) return std::nullopt;
  return std::string(metadata);
}

absl::Status ServeHookConnection(int fd, HookHandler& handler, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  PeerCred peer;
  struct ucred uc;
  socklen_t len = sizeof(uc);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
    peer.pid = uc.pid;
    peer.uid = uc.uid;
    peer.gid = uc.gid;
  }
  auto line = ReadLine(fd, deadline);
  if (!line.ok()) {
    (void)WriteAll(fd, FormatHookReply(line.status()), deadline);
    return line.status();
  }
  auto req = ParseHookRequest(*line);
  absl::Status result = req.ok() ? handler.Handle(*req, peer) : req.status();
  SA_RETURN_IF_ERROR(WriteAll(fd, FormatHookReply(result), deadline));
  return result;
}

absl::StatusOr<std::unique_ptr<HookServer>> HookServer::Start(const std::string& path,
                                                              HookHandler* handler,
                                                              absl::Duration timeout) {
  std::unique_ptr<HookServer> s(new HookServer());
  s->handler_ = handler;
  s->timeout_ = timeout;
  SA_ASSIGN_OR_RETURN(s->listener_,
                      UnixListener::Listen(path, {SOCK_STREAM | SOCK_NONBLOCK, 0600, 64}));
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  s->stop_r_.reset(p[0]);
  s->stop_w_.reset(p[1]);
  HookServer* raw = s.get();
  s->thread_ = std::thread([raw] { raw->Loop(); });
  return s;
}

HookServer::~HookServer() {
  if (stop_w_) {
    char b = 1;
    (void)!write(stop_w_.get(), &b, 1);
  }
  if (thread_.joinable()) thread_.join();
  listener_.Close();
}

void HookServer::Loop() {
  for (;;) {
    struct pollfd p[2] = {{listener_.fd(), POLLIN, 0}, {stop_r_.get(), POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    UniqueFd c(accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!c) continue;
    (void)ServeHookConnection(c.get(), *handler_, timeout_);
  }
}

absl::Status SendHookRequest(const std::string& socket_path, const HookRequest& request,
                             absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  SA_ASSIGN_OR_RETURN(sockaddr_un sa, UnixAddress(socket_path));
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoStatus(errno, "socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      return absl::UnavailableError(
          absl::StrCat("connect ", socket_path, ": ", strerror(errno), " (errno ", errno, ")"));
    }
    // A full backlog: wait for the agent to accept, within the deadline.
    struct pollfd p = {fd.get(), POLLOUT, 0};
    int r = poll(&p, 1, RemainingMs(deadline));
    int soerr = 0;
    socklen_t l = sizeof(soerr);
    if (r <= 0 || getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &l) != 0 || soerr != 0) {
      return absl::UnavailableError(absl::StrCat("connect ", socket_path, ": timed out or failed"));
    }
  }
  absl::Status w = WriteAll(fd.get(), FormatHookRequest(request), deadline);
  if (!w.ok())
    return absl::UnavailableError(absl::StrCat("send to ", socket_path, ": ", w.message()));
  auto line = ReadLine(fd.get(), deadline);
  if (!line.ok()) {
    return absl::UnavailableError(
        absl::StrCat("reply from ", socket_path, ": ", line.status().message()));
  }
  return ParseHookReply(*line);
}

}  // namespace seccomp_agent::hook
