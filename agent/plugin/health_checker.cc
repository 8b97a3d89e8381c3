#include "agent/plugin/health_checker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace seccomp_agent::plugin {

namespace health = ::grpc::health::v1;

namespace {
constexpr char kServiceName[] = "seccompagent.v1.PolicyPlugin";
}  // namespace

HealthChecker::HealthChecker(Options opts, std::vector<PluginState*> plugins, OutstandingOps* ops)
    : opts_(opts), plugins_(std::move(plugins)), ops_(ops) {}

void HealthChecker::Stop() {
  stopping_.store(true);
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HealthChecker::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void HealthChecker::Kick(PluginState* p) {
  {
    std::lock_guard<std::mutex> l(mu_);
    const Clock::time_point soon =
        p->last_health_check + absl::ToChronoNanoseconds(opts_.kick_interval);
    if (soon >= p->next_health_check) return;
    p->next_health_check = soon;
  }
  cv_.notify_all();
}

void HealthChecker::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    const Clock::time_point now = Clock::now();
    Clock::time_point next = now + absl::ToChronoNanoseconds(opts_.interval);
    for (PluginState* p : plugins_) {
      if (p->next_health_check <= now) {
        p->next_health_check = now + absl::ToChronoNanoseconds(opts_.interval);
        p->last_health_check = now;
        if (!p->health_check_running.exchange(true)) {
          l.unlock();
          StartCheck(p, p->health_use_overall.load());
          l.lock();
        }
      }
      next = std::min(next, p->next_health_check);
    }
    cv_.wait_until(l, next);
  }
}

void HealthChecker::StartCheck(PluginState* p, bool overall) {
  struct Check {
    grpc::ClientContext ctx;
    health::HealthCheckRequest req;
    health::HealthCheckResponse resp;
  };
  auto c = std::make_shared<Check>();
  c->req.set_service(overall ? "" : kServiceName);
  c->ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(opts_.timeout));
  ops_->Begin();
  p->health_stub->async()->Check(&c->ctx, &c->req, &c->resp, [this, p, c, overall](grpc::Status s) {
    bool again = false;
    if (s.ok()) {
      const bool serving = c->resp.status() == health::HealthCheckResponse::SERVING;
      p->health.store(serving ? kHealthServing : kHealthNotServing);
      if (serving) {
        p->transitions->OnServing();
      } else {
        p->transitions->OnUnavailable("its health check says NOT_SERVING");
      }
    } else if (s.error_code() == grpc::StatusCode::NOT_FOUND && !overall) {
      // The server keeps no status for our service name: ask about the
      // server as a whole from now on.
      p->health_use_overall.store(true);
      again = true;
    } else if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      p->health.store(kHealthServing);  // no health service: calls decide
    } else {
      if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
        p->transitions->OnUnavailable(absl::StrCat("health check: ", s.error_message()));
      }
      // Unreachable or slow: unknown. Calls are still tried (and fail fast
      // while the channel is down); not a reason to refuse them.
      p->health.store(kHealthUnknown);
    }
    if (again && !stopping_.load()) {
      StartCheck(p, true);
    } else {
      p->health_check_running.store(false);
    }
    ops_->End();
  });
}

}  // namespace seccomp_agent::plugin
