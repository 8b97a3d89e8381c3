#include "agent/plugin/examples/redirect_by_label/redirect_by_label.h"

namespace seccomp_agent::examples {

namespace v1 = ::seccompagent::v1;

namespace {

bool Labelled(const RedirectByLabelConfig& cfg, const v1::Container& c) {
  auto it = c.annotations().find(cfg.label_key);
  return it != c.annotations().end() && (cfg.label_value.empty() || it->second == cfg.label_value);
}

// The map entry that applies to `path`, as a one-entry RedirectOpen.
bool Lookup(const RedirectByLabelConfig& cfg, const std::string& path, v1::RedirectOpen* out) {
  if (auto it = cfg.exact.find(path); it != cfg.exact.end()) {
    (*out->mutable_exact())[it->first] = it->second;
    return true;
  }
  // Longest matching prefix ("/dir/" matches "/dir/x").
  const std::pair<const std::string, std::string>* best = nullptr;
  for (const auto& kv : cfg.prefix) {
    if (path.compare(0, kv.first.size(), kv.first) == 0 &&
        (best == nullptr || kv.first.size() > best->first.size())) {
      best = &kv;
    }
  }
  if (best == nullptr) return false;
  (*out->mutable_prefix())[best->first] = best->second;
  return true;
}

}  // namespace

v1::Decision DecideRedirectByLabel(const RedirectByLabelConfig& cfg, const v1::Notification& n) {
  v1::Decision d;
  if (!Labelled(cfg, n.container())) {
    if (cfg.others_no_opinion) {
      d.mutable_no_opinion();
      return d;
    }
    d.mutable_allow();
    d.set_reason("container not labelled");
    if (cfg.cache_ttl_ms > 0) {
      d.mutable_cache()->set_scope(v1::CacheHint::SCOPE_SYSCALL_CONTAINER);
      d.mutable_cache()->set_ttl_ms(cfg.cache_ttl_ms);
    }
    return d;
  }
  const std::string& sc = n.syscall_name();
  if ((sc == "open" || sc == "openat") && n.decoded().has_path() &&
      Lookup(cfg, n.decoded().path().value(), d.mutable_redirect_open())) {
    d.set_reason("labelled container, mapped path");
  } else {
    d.clear_redirect_open();
    d.mutable_allow();
    d.set_reason("labelled container, path not mapped");
  }
  if (cfg.cache_ttl_ms > 0) {
    d.mutable_cache()->set_scope(v1::CacheHint::SCOPE_EXACT_ARGS);
    d.mutable_cache()->set_ttl_ms(cfg.cache_ttl_ms);
  }
  return d;
}

grpc::ServerUnaryReactor* RedirectByLabelService::Decide(grpc::CallbackServerContext* ctx,
                                                         const v1::DecideRequest* req,
                                                         v1::DecideResponse* resp) {
  *resp->mutable_decision() = DecideRedirectByLabel(cfg_, req->notification());
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(grpc::Status::OK);
  return r;
}

namespace {

// Reads a request, writes its answer, reads the next: answers go out in
// request order (the agent matches them by request_id anyway).
class StreamReactor
    : public grpc::ServerBidiReactor<v1::DecideStreamRequest, v1::DecideStreamResponse> {
 public:
  explicit StreamReactor(const RedirectByLabelConfig* cfg) : cfg_(cfg) { StartRead(&req_); }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    resp_.Clear();
    resp_.set_request_id(req_.request_id());
    *resp_.mutable_decision() = DecideRedirectByLabel(*cfg_, req_.notification());
    StartWrite(&resp_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::CANCELLED);
      return;
    }
    StartRead(&req_);
  }
  void OnDone() override { delete this; }

 private:
  const RedirectByLabelConfig* cfg_;
  v1::DecideStreamRequest req_;
  v1::DecideStreamResponse resp_;
};

}  // namespace

grpc::ServerBidiReactor<v1::DecideStreamRequest, v1::DecideStreamResponse>*
RedirectByLabelService::DecideStream(grpc::CallbackServerContext* ctx) {
  return new StreamReactor(&cfg_);
}

}  // namespace seccomp_agent::examples
