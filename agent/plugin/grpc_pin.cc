// grpc++ 1.51: callback RPCs of every channel and callback server share one
// process-wide "callback alternative" completion queue, reference-counted,
// with its own polling threads. When the count drops to zero (the last
// dispatcher/server is destroyed) and a new user appears while those
// threads wind down, grpc aborts in grpc_cq_internal_unref ("assertion
// failed: prior > 0"); seen in tests that create and destroy dispatchers. A
// channel that made one callback call holds a reference until it is
// destroyed, so one such channel is kept for the process.
#include "agent/plugin/grpc_pin.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "proto/grpc/health/v1/health.grpc.pb.h"

namespace seccomp_agent::plugin {

namespace {
std::shared_ptr<grpc::Channel>* g_pinned_channel = nullptr;  // never freed
}  // namespace

void PinCallbackCompletionQueue() {
  static std::once_flag once;
  std::call_once(once, [] {
    namespace health = ::grpc::health::v1;
    g_pinned_channel = new std::shared_ptr<grpc::Channel>(grpc::CreateChannel(
        "unix:///nonexistent/seccomp-agent-grpc-pin", grpc::InsecureChannelCredentials()));
    auto stub = health::Health::NewStub(*g_pinned_channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    health::HealthCheckRequest req;
    health::HealthCheckResponse resp;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    stub->async()->Check(&ctx, &req, &resp, [&](grpc::Status) {
      std::lock_guard<std::mutex> l(mu);
      done = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done; });
  });
}

}  // namespace seccomp_agent::plugin
