// The one DecideStream of a plugin (PluginConfig.stream: true).
#ifndef SECCOMP_AGENT_PLUGIN_STREAM_REACTOR_H_
#define SECCOMP_AGENT_PLUGIN_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "agent/plugin/plugin_state.h"
#include "proto/seccompagent/v1/plugin.grpc.pb.h"

namespace seccomp_agent::plugin {

// Owned by shared_ptrs: the plugin's current-stream slot, pending calls
// (weak), and itself until OnDone.
//
// Lifetime rule: a hold is taken before StartCall and dropped when the read
// loop ends (OnReadDone(false)), under mu_, together with closing_ = true.
// Send() writes only under mu_ with !closing_, so every StartWrite happens
// while the hold is in place, i.e. strictly before OnDone.
class StreamReactor
    : public grpc::ClientBidiReactor<v1::DecideStreamRequest, v1::DecideStreamResponse>,
      public std::enable_shared_from_this<StreamReactor> {
 public:
  StreamReactor(CallSink* sink, PluginState* p) : sink_(sink), p_(p) {}

  // Binds the reactor to a new RPC (nothing is sent yet: Send() may queue
  // writes from here on), then Start() begins it. Split so the plugin's
  // stream slot can be filled under its lock and the call started outside.
  void Bind();
  void Start() { StartCall(); }

  // Queues `call` with `*n` (moved from); false when the stream is closing
  // (the caller fails it).
  bool Send(const std::shared_ptr<PendingCall>& call, v1::Notification* n);
  // The timer gave up on `id`.
  void OnTimeout(uint64_t id);
  void Cancel() { ctx_.TryCancel(); }

  void OnWriteDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& s) override;

 private:
  void DeliverResponse();
  void FailAllPending();

  CallSink* const sink_;
  PluginState* const p_;
  grpc::ClientContext ctx_;
  v1::DecideStreamResponse resp_;  // read loop only
  std::shared_ptr<StreamReactor> self_;

  // Recursive as a safety net: gRPC runs reactions on its own threads, but
  // should one ever run inline inside StartWrite, it must not deadlock.
  std::recursive_mutex mu_;
  bool closing_ = false;
  bool writing_ = false;
  int consecutive_timeouts_ = 0;
  uint64_t next_id_ = 0;
  std::deque<v1::DecideStreamRequest> queue_;  // front is being written
  std::unordered_map<uint64_t, std::shared_ptr<PendingCall>> pending_;
};

}  // namespace seccomp_agent::plugin

#endif  // SECCOMP_AGENT_PLUGIN_STREAM_REACTOR_H_
