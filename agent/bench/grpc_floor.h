// The floor of a gRPC plugin round trip: a minimal C++ gRPC server (a
// fixed answer, callback API as the example plugin) and a minimal client
// (grpc++'s synchronous API: the calling thread sends and polls for the
// answer itself, no other thread involved), over the same kind of unix
// socket with the same messages as the agent and its plugin exchange.
#ifndef SECCOMP_AGENT_BENCH_GRPC_FLOOR_H_
#define SECCOMP_AGENT_BENCH_GRPC_FLOOR_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/seccompagent/v1/plugin.grpc.pb.h"

namespace seccomp_agent::bench {

// Serves PolicyPlugin on `address`, answering every Decide and every
// DecideStream message with `answer`, until SIGTERM or SIGINT. Returns the
// process's exit code. Runs in its own process (the bench re-executes
// itself), like the plugin it stands for.
int ServeGrpcFloor(const std::string& address, const ::seccompagent::v1::Decision& answer);

// One connection; RoundTrip sends `n` and waits for the answer (unary: one
// call each; stream: one DecideStream for the client's life).
class GrpcFloorClient {
 public:
  static absl::StatusOr<std::unique_ptr<GrpcFloorClient>> Connect(const std::string& address,
                                                                  bool stream);
  ~GrpcFloorClient();
  absl::Status RoundTrip(const ::seccompagent::v1::Notification& n);

 private:
  GrpcFloorClient() = default;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<::seccompagent::v1::PolicyPlugin::Stub> stub_;
  // Stream mode.
  std::unique_ptr<grpc::ClientContext> stream_ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<::seccompagent::v1::DecideStreamRequest,
                                           ::seccompagent::v1::DecideStreamResponse>>
      stream_;
  ::seccompagent::v1::DecideStreamRequest sreq_;
  ::seccompagent::v1::DecideStreamResponse sresp_;
  uint64_t next_id_ = 1;
};

}  // namespace seccomp_agent::bench

#endif  // SECCOMP_AGENT_BENCH_GRPC_FLOOR_H_
