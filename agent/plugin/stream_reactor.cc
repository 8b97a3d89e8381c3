#include "agent/plugin/stream_reactor.h"

namespace seccomp_agent::plugin {

void StreamReactor::Bind() {
  self_ = shared_from_this();
  sink_->outstanding().Begin();
  {
    std::lock_guard<std::mutex> l(p_->stats_mu);
    ++p_->stats.streams_opened;
  }
  p_->stub->async()->DecideStream(&ctx_, this);
  AddHold();
  StartRead(&resp_);
}

bool StreamReactor::Send(const std::shared_ptr<PendingCall>& call, v1::Notification* n) {
  std::lock_guard<std::recursive_mutex> l(mu_);
  if (closing_) return false;
  {
    std::lock_guard<std::mutex> cl(call->stream_mu);
    call->request_id = ++next_id_;
    call->stream = weak_from_this();
  }
  pending_.emplace(call->request_id, call);
  v1::DecideStreamRequest& req = queue_.emplace_back();
  req.set_request_id(call->request_id);
  req.mutable_notification()->Swap(n);
  if (!writing_) {
    writing_ = true;
    StartWrite(&queue_.front());
  }
  return true;
}

void StreamReactor::OnTimeout(uint64_t id) {
  bool reset = false;
  {
    std::lock_guard<std::recursive_mutex> l(mu_);
    pending_.erase(id);
    reset = ++consecutive_timeouts_ >= sink_->stream_timeouts_before_reset() && !closing_;
    // Wedged: no new call is sent here (one sent between the cancel and the
    // end of the read loop would fail as "unavailable" though the plugin is
    // up), and the slot is emptied so the next call opens a new stream.
    if (reset) closing_ = true;
  }
  if (!reset) return;
  {
    std::lock_guard<std::mutex> l(p_->stream_mu);
    if (p_->stream.get() == this) p_->stream.reset();
  }
  ctx_.TryCancel();  // the read loop ends and fails what is still pending
}

void StreamReactor::OnWriteDone(bool ok) {
  std::lock_guard<std::recursive_mutex> l(mu_);
  queue_.pop_front();
  if (!ok || closing_ || queue_.empty()) {
    // !ok: the stream is broken; the read loop ends and fails the calls.
    if (!ok) queue_.clear();
    writing_ = false;
    return;
  }
  StartWrite(&queue_.front());
}

void StreamReactor::DeliverResponse() {
  std::shared_ptr<PendingCall> call;
  v1::Decision d;
  const bool has = resp_.has_decision();
  {
    std::lock_guard<std::recursive_mutex> l(mu_);
    auto it = pending_.find(resp_.request_id());
    if (it != pending_.end()) {
      call = std::move(it->second);
      pending_.erase(it);
      consecutive_timeouts_ = 0;
    }
    if (has) d = std::move(*resp_.mutable_decision());
  }
  if (call != nullptr) {
    sink_->CompleteWithDecision(call, has ? &d : nullptr, grpc::Status::OK);
  } else {
    std::lock_guard<std::mutex> l(p_->stats_mu);
    ++p_->stats.late_or_unknown_responses;
  }
}

// The stream is over: fail everything pending on it at once.
void StreamReactor::FailAllPending() {
  std::unordered_map<uint64_t, std::shared_ptr<PendingCall>> failed;
  {
    std::lock_guard<std::recursive_mutex> l(mu_);
    closing_ = true;
    failed.swap(pending_);
  }
  {
    std::lock_guard<std::mutex> l(p_->stream_mu);
    if (p_->stream.get() == this) p_->stream.reset();
  }
  for (auto& kv : failed) {
    sink_->FailCall(kv.second, ErrorKind::kUnavailable,
                    absl::UnavailableError("plugin stream broken"));
  }
  if (!failed.empty()) sink_->KickHealth(p_);
}

void StreamReactor::OnReadDone(bool ok) {
  if (ok) {
    DeliverResponse();
    resp_.Clear();
    StartRead(&resp_);
    return;
  }
  FailAllPending();
  // A read can fail while the RPC is still open (an answer that does not
  // parse): end it, or OnDone would wait for the plugin to finish.
  ctx_.TryCancel();
  RemoveHold();
}

void StreamReactor::OnDone(const grpc::Status&) {
  auto keep = std::move(self_);
  sink_->outstanding().End();
  // `keep` may be the last reference: nothing after this line.
}

}  // namespace seccomp_agent::plugin
