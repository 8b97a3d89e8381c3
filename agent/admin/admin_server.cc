#include "agent/admin/admin_server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/log.h"
#include "agent/common/status.h"
#include "agent/common/unix_socket.h"
#include "agent/handoff/message.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/server_posix.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"

namespace seccomp_agent::admin {

namespace {

constexpr char kServiceName[] = "seccompagent.v1.AdminService";
constexpr absl::Duration kPoll = absl::Milliseconds(200);

void FillPolicy(const PolicySummary& p, v1::PolicyInfo* out) {
  out->set_source(p.source);
  out->set_rules(p.rules);
  out->set_name(p.name);
  out->set_version(p.version);
  out->set_error(p.error);
}

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

void FillCounters(const ContainerSnapshot& s, v1::ContainerCounters* c) {
  c->set_notifications(s.notifications);
  c->set_allowed(s.allowed);
  c->set_denied(s.denied);
  c->set_returned(s.returned);
  c->set_substituted(s.substituted);
  c->set_task_gone(s.task_gone);
  c->set_errors(s.errors);
  c->set_rate_limited(s.rate_limited);
  c->set_throttled_seconds(static_cast<double>(s.throttled_ns) / 1e9);
  c->set_rate_limit(s.rate);
}

}  // namespace

void FillHandoffStats(const HandoffCounters& c, size_t pending, v1::HandoffStats* out) {
  out->set_connections(c.connections.load());
  out->set_handoffs(c.handoffs.load());
  for (int i = 0; i < kRejectReasonCount; ++i) {
    (*out->mutable_rejected())[RejectReasonName(static_cast<RejectReason>(i))] =
        c.rejected[i].load();
  }
  out->set_pending_connections(pending);
}

class AdminServer::AdminServiceImpl final : public v1::AdminService::Service {
 public:
  explicit AdminServiceImpl(AdminServer* s) : s_(s) {}

  grpc::Status ListContainers(grpc::ServerContext*, const v1::ListContainersRequest* req,
                              v1::ListContainersResponse* resp) override {
    std::vector<ContainerSnapshot> cs = s_->options_.containers();
    std::stable_sort(cs.begin(), cs.end(), [](const auto& a, const auto& b) {
      return a.registered_unix_ns < b.registered_unix_ns;
    });
    for (const ContainerSnapshot& c : cs) {
      if (!req->pod_namespace().empty() && c.info.pod_namespace != req->pod_namespace()) continue;
      v1::ContainerEntry* out = resp->add_containers();
      out->set_id(c.info.id);
      out->set_init_pid(c.info.init_pid);
      out->set_runtime(c.info.runtime);
      out->set_pod_namespace(c.info.pod_namespace);
      out->set_pod_name(c.info.pod_name);
      out->set_container_name(c.info.container_name);
      out->set_listener_metadata(c.info.metadata);
      out->set_bundle(c.info.bundle);
      out->set_policy(c.policy);
      out->set_registered_unix_nanos(c.registered_unix_ns);
      for (const auto& [k, v] : c.info.annotations) (*out->mutable_annotations())[k] = v;
      FillCounters(c, out->mutable_counters());
    }
    resp->set_now_unix_nanos(absl::ToUnixNanos(absl::Now()));
    return grpc::Status::OK;
  }

  grpc::Status GetStats(grpc::ServerContext*, const v1::GetStatsRequest*,
                        v1::GetStatsResponse* resp) override {
    std::vector<ContainerSnapshot> cs = s_->options_.containers();
    resp->set_uptime_seconds(absl::ToDoubleSeconds(absl::Now() - s_->started_));
    resp->set_active_containers(cs.size());
    v1::ContainerCounters* t = resp->mutable_totals();
    if (s_->options_.totals) {
      const EngineTotals e = s_->options_.totals();
      t->set_notifications(e.notifications);
      t->set_allowed(e.allowed);
      t->set_denied(e.denied);
      t->set_returned(e.returned);
      t->set_substituted(e.substituted);
      t->set_task_gone(e.task_gone);
      t->set_errors(e.errors);
      t->set_rate_limited(e.rate_limited);
      t->set_throttled_seconds(static_cast<double>(e.throttled_ns) / 1e9);
    }
    for (const ContainerSnapshot& c : s_->options_.totals ? std::vector<ContainerSnapshot>{} : cs) {
      t->set_notifications(t->notifications() + c.notifications);
      t->set_allowed(t->allowed() + c.allowed);
      t->set_denied(t->denied() + c.denied);
      t->set_returned(t->returned() + c.returned);
      t->set_substituted(t->substituted() + c.substituted);
      t->set_task_gone(t->task_gone() + c.task_gone);
      t->set_errors(t->errors() + c.errors);
      t->set_rate_limited(t->rate_limited() + c.rate_limited);
      t->set_throttled_seconds(t->throttled_seconds() + static_cast<double>(c.throttled_ns) / 1e9);
    }
    if (s_->options_.handoff_stats) s_->options_.handoff_stats(resp->mutable_handoff());
    FillPolicy(s_->options_.policy(), resp->mutable_policy());
    if (s_->options_.policies) {
      for (const PolicySummary& p : s_->options_.policies()) FillPolicy(p, resp->add_policies());
    }
    resp->set_watchers(s_->options_.broadcaster->subscribers());
    resp->set_watch_events_dropped(s_->options_.broadcaster->dropped_total());
    resp->set_admin_connections_rejected(s_->rejected_.load());
    return grpc::Status::OK;
  }

  grpc::Status WatchDecisions(grpc::ServerContext* ctx, const v1::WatchDecisionsRequest* req,
                              grpc::ServerWriter<v1::WatchDecisionsResponse>* writer) override {
    if (req->queue_size() > Broadcaster::kMaxQueue) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("queue_size must be at most ", Broadcaster::kMaxQueue));
    }
    if (s_->watchers_.fetch_add(1) >= s_->options_.max_watchers) {
      s_->watchers_.fetch_sub(1);
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat("at most ", s_->options_.max_watchers, " watchers"));
    }
    auto sub = s_->options_.broadcaster->Subscribe(req->container_id(), req->pod_namespace(),
                                                   req->queue_size());
    // Headers out now, so the client knows the subscription is live.
    writer->SendInitialMetadata();
    std::vector<DecisionEventCopy> batch;
    grpc::Status result = grpc::Status::OK;
    while (!ctx->IsCancelled() && !s_->stopping_.load()) {
      batch.clear();
      uint64_t dropped = sub->Next(kPoll, &batch);
      bool ok = true;
      if (dropped > 0) {
        v1::WatchDecisionsResponse r;
        r.mutable_dropped()->set_count(dropped);
        ok = writer->Write(r);
      }
      for (const DecisionEventCopy& e : batch) {
        if (!ok) break;
        v1::WatchDecisionsResponse r;
        v1::DecisionEvent* d = r.mutable_decision();
        d->set_time_unix_nanos(e.time_unix_ns);
        d->set_container_id(e.container_id);
        d->set_pod_namespace(e.pod_namespace);
        d->set_pod_name(e.pod_name);
        d->set_container_name(e.container_name);
        d->set_pid(e.pid);
        d->set_syscall(e.syscall);
        d->set_path(e.path);
        d->set_rule(e.rule);
        d->set_action(e.action);
        d->set_result(e.result);
        d->set_backend(e.backend);
        d->set_latency_nanos(e.latency_ns);
        ok = writer->Write(r);
      }
      if (!ok) break;  // the client went away
    }
    sub.reset();
    s_->watchers_.fetch_sub(1);
    if (s_->stopping_.load())
      result = grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent stopping");
    return result;
  }

  grpc::Status ReloadPolicy(grpc::ServerContext*, const v1::ReloadPolicyRequest*,
                            v1::ReloadPolicyResponse* resp) override {
    absl::StatusOr<PolicySummary> p = s_->options_.reload();
    if (!p.ok()) return ToGrpc(p.status());
    FillPolicy(*p, resp->mutable_policy());
    if (s_->options_.policies) {
      for (const PolicySummary& q : s_->options_.policies()) FillPolicy(q, resp->add_policies());
    }
    return grpc::Status::OK;
  }

 private:
  AdminServer* s_;
};

class AdminServer::HealthServiceImpl final : public grpc::health::v1::Health::Service {
 public:
  explicit HealthServiceImpl(AdminServer* s) : s_(s) {}

  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::health::v1::HealthCheckResponse* resp) override {
    if (!Known(req->service())) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service");
    }
    resp->set_status(Current());
    return grpc::Status::OK;
  }

  grpc::Status Watch(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* w) override {
    using R = grpc::health::v1::HealthCheckResponse;
    R::ServingStatus last = R::UNKNOWN;
    bool first = true;
    while (!ctx->IsCancelled() && !s_->stopping_.load()) {
      R::ServingStatus now = Known(req->service()) ? Current() : R::SERVICE_UNKNOWN;
      if (first || now != last) {
        R r;
        r.set_status(now);
        if (!w->Write(r)) break;
        last = now;
        first = false;
      }
      absl::SleepFor(kPoll);
    }
    return grpc::Status::OK;
  }

 private:
  static bool Known(const std::string& service) {
    return service.empty() || service == kServiceName;
  }
  grpc::health::v1::HealthCheckResponse::ServingStatus Current() const {
    const bool healthy = !s_->options_.healthy || s_->options_.healthy();
    return s_->serving_.load() && !s_->stopping_.load() && healthy
               ? grpc::health::v1::HealthCheckResponse::SERVING
               : grpc::health::v1::HealthCheckResponse::NOT_SERVING;
  }
  AdminServer* s_;
};

AdminServer::AdminServer(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(Options options) {
  if (!options.containers || !options.policy || !options.reload || !options.broadcaster) {
    return absl::InvalidArgumentError(
        "admin server: containers, policy, reload and broadcaster are required");
  }
  std::unique_ptr<AdminServer> s(new AdminServer(std::move(options)));
  const std::string& path = s->options_.socket_path;
  auto l = UnixListener::Listen(path, {SOCK_STREAM | SOCK_NONBLOCK, s->options_.socket_mode, 64});
  if (l.status().code() == absl::StatusCode::kAlreadyExists) {
    return absl::AlreadyExistsError(absl::StrCat("another agent is serving ", path));
  }
  if (!l.ok()) return l.status();
  s->listener_ = *std::move(l);
  s->stop_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s->stop_fd_) return ErrnoStatus(errno, "eventfd");

  s->admin_ = std::make_unique<AdminServiceImpl>(s.get());
  s->health_ = std::make_unique<HealthServiceImpl>(s.get());
  grpc::ServerBuilder builder;  // no listening port: connections come from AcceptLoop
  builder.RegisterService(s->admin_.get());
  builder.RegisterService(s->health_.get());
  s->server_ = builder.BuildAndStart();
  if (!s->server_) return absl::InternalError("grpc server did not start");
  s->started_ = absl::Now();
  s->accept_thread_ = std::thread([raw = s.get()] { raw->AcceptLoop(); });
  return s;
}

AdminServer::~AdminServer() {
  stopping_.store(true);
  if (stop_fd_) {
    uint64_t one = 1;
    (void)!write(stop_fd_.get(), &one, sizeof(one));
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  listener_.Close();  // unlinks the path only while it is still ours
}

void AdminServer::SetServing(bool serving) { serving_.store(serving); }

void AdminServer::AcceptLoop() {
  pollfd fds[2] = {{listener_.fd(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
  while (!stopping_.load()) {
    int n = poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("admin socket: poll: {}", strerror(errno));
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    for (;;) {
      UniqueFd conn(accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (!conn) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          spdlog::warn("admin socket: accept: {}", strerror(errno));
          // EMFILE and friends: back off instead of spinning.
          usleep(100 * 1000);
        }
        break;
      }
      ucred cred{};
      socklen_t len = sizeof(cred);
      if (getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        rejected_.fetch_add(1);
        spdlog::warn("admin connection rejected: SO_PEERCRED failed: {}", strerror(errno));
        continue;
      }
      if (std::find(options_.allowed_uids.begin(), options_.allowed_uids.end(), cred.uid) ==
          options_.allowed_uids.end()) {
        rejected_.fetch_add(1);
        spdlog::warn("admin connection rejected: peer pid {} uid {} not in --admin_uids", cred.pid,
                     cred.uid);
        continue;  // `conn` closes
      }
      accepted_.fetch_add(1);
      spdlog::debug("admin connection from pid {} uid {}", cred.pid, cred.uid);
      grpc::AddInsecureChannelFromFd(server_.get(), conn.release());  // gRPC owns it now
    }
  }
}

}  // namespace seccomp_agent::admin
