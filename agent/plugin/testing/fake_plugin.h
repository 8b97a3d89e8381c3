// An in-process PolicyPlugin server whose behaviour tests switch at run
// time: answer (through a responder function), hang, answer late, answer
// bytes that do not parse. It counts what reaches it, serves the standard
// health service, and can be stopped and restarted on the same address.
#ifndef SECCOMP_AGENT_PLUGIN_TESTING_FAKE_PLUGIN_H_
#define SECCOMP_AGENT_PLUGIN_TESTING_FAKE_PLUGIN_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "proto/seccompagent/v1/plugin.grpc.pb.h"

namespace seccomp_agent::plugin::testing {

class FakePlugin {
 public:
  enum class Mode {
    kAnswer,   // responder(notification), after `delay`
    kHang,     // never answer (until the call is cancelled)
    kGarbage,  // answer bytes that are not a DecideResponse (unary only;
               // a stream gets a response with unparseable... see .cc)
  };
  using Responder =
      std::function<seccompagent::v1::Decision(const seccompagent::v1::Notification&)>;

  FakePlugin();
  ~FakePlugin();

  // Starts serving on `address` ("unix:///path", "127.0.0.1:PORT") with
  // `creds` (default plaintext). Health: SERVING.
  absl::Status Start(const std::string& address,
                     std::shared_ptr<grpc::ServerCredentials> creds = nullptr);
  // Stops the server, cancelling calls and streams in progress (a crash as
  // seen from the client). Start() may be called again.
  void Stop();

  void set_mode(Mode m) { mode_.store(m); }
  void set_delay(std::chrono::milliseconds d) { delay_ms_.store(d.count()); }
  void set_responder(Responder r);
  // grpc.health.v1 status of "seccompagent.v1.PolicyPlugin" and "".
  void SetServing(bool serving);

  // Requests that reached the server (unary calls + stream messages).
  int requests() const { return requests_.load(); }
  int unary_requests() const { return unary_.load(); }
  int stream_requests() const { return stream_msgs_.load(); }
  int streams() const { return streams_.load(); }
  // Answers made (after `delay`), also those whose call was cancelled.
  int answers() const { return answers_.load(); }

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::atomic<Mode> mode_{Mode::kAnswer};
  std::atomic<long> delay_ms_{0};
  std::atomic<int> requests_{0}, unary_{0}, stream_msgs_{0}, streams_{0}, answers_{0};
  friend class Impl;
};

// A decision allowing everything.
seccompagent::v1::Decision AllowDecision();

}  // namespace seccomp_agent::plugin::testing

#endif  // SECCOMP_AGENT_PLUGIN_TESTING_FAKE_PLUGIN_H_
