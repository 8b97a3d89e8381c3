#include "agent/bench/grpc_floor.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>

#include "absl/strings/str_cat.h"

namespace seccomp_agent::bench {

namespace v1 = ::seccompagent::v1;

namespace {

class FloorStream
    : public grpc::ServerBidiReactor<v1::DecideStreamRequest, v1::DecideStreamResponse> {
 public:
  explicit FloorStream(const v1::Decision* answer) : answer_(answer) { StartRead(&req_); }
  void OnReadDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::OK);
    resp_.set_request_id(req_.request_id());
    *resp_.mutable_decision() = *answer_;
    StartWrite(&resp_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::CANCELLED);
    StartRead(&req_);
  }
  void OnDone() override { delete this; }

 private:
  const v1::Decision* answer_;
  v1::DecideStreamRequest req_;
  v1::DecideStreamResponse resp_;
};

class FloorService : public v1::PolicyPlugin::CallbackService {
 public:
  explicit FloorService(v1::Decision answer) : answer_(std::move(answer)) {}
  grpc::ServerUnaryReactor* Decide(grpc::CallbackServerContext* ctx, const v1::DecideRequest*,
                                   v1::DecideResponse* resp) override {
    *resp->mutable_decision() = answer_;
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
  grpc::ServerBidiReactor<v1::DecideStreamRequest, v1::DecideStreamResponse>* DecideStream(
      grpc::CallbackServerContext*) override {
    return new FloorStream(&answer_);
  }

 private:
  const v1::Decision answer_;
};

}  // namespace

int ServeGrpcFloor(const std::string& address, const v1::Decision& answer) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  FloorService service(answer);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return 1;
  int sig = 0;
  sigwait(&set, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}

absl::StatusOr<std::unique_ptr<GrpcFloorClient>> GrpcFloorClient::Connect(
    const std::string& address, bool stream) {
  std::unique_ptr<GrpcFloorClient> c(new GrpcFloorClient());
  c->channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  if (!c->channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
    return absl::UnavailableError(absl::StrCat("gRPC floor: cannot connect to ", address));
  }
  c->stub_ = v1::PolicyPlugin::NewStub(c->channel_);
  if (stream) {
    c->stream_ctx_ = std::make_unique<grpc::ClientContext>();
    c->stream_ = c->stub_->DecideStream(c->stream_ctx_.get());
  }
  return c;
}

GrpcFloorClient::~GrpcFloorClient() {
  if (stream_ == nullptr) return;
  stream_->WritesDone();
  stream_->Finish().ok();
}

absl::Status GrpcFloorClient::RoundTrip(const v1::Notification& n) {
  if (stream_ == nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    v1::DecideRequest req;
    *req.mutable_notification() = n;
    v1::DecideResponse resp;
    grpc::Status s = stub_->Decide(&ctx, req, &resp);
    if (!s.ok()) return absl::UnavailableError(absl::StrCat("gRPC floor: ", s.error_message()));
    return absl::OkStatus();
  }
  sreq_.set_request_id(next_id_++);
  *sreq_.mutable_notification() = n;
  if (!stream_->Write(sreq_) || !stream_->Read(&sresp_)) {
    return absl::UnavailableError("gRPC floor: stream broken");
  }
  return absl::OkStatus();
}

}  // namespace seccomp_agent::bench
