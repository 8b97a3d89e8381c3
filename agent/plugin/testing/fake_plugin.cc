#include "agent/plugin/testing/fake_plugin.h"

#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/health_check_service_interface.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <thread>
#include <vector>

namespace seccomp_agent::plugin::testing {

namespace v1 = ::seccompagent::v1;
using Clock = std::chrono::steady_clock;

seccompagent::v1::Decision AllowDecision() {
  v1::Decision d;
  d.mutable_allow();
  return d;
}

namespace {

constexpr char kDecide[] = "/seccompagent.v1.PolicyPlugin/Decide";
constexpr char kDecideStream[] = "/seccompagent.v1.PolicyPlugin/DecideStream";

// Runs closures at a given time on one thread.
class Scheduler {
 public:
  Scheduler() : t_([this] { Run(); }) {}
  ~Scheduler() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    t_.join();
  }
  void At(Clock::time_point when, std::function<void()> fn) {
    std::lock_guard<std::mutex> l(mu_);
    q_.emplace(when, std::move(fn));
    cv_.notify_all();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      if (q_.empty()) {
        cv_.wait(l);
        continue;
      }
      auto it = q_.begin();
      if (it->first > Clock::now()) {
        const Clock::time_point when = it->first;
        cv_.wait_until(l, when);
        continue;
      }
      auto fn = std::move(it->second);
      q_.erase(it);
      l.unlock();
      fn();
      l.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::multimap<Clock::time_point, std::function<void()>> q_;
  std::thread t_;
};

grpc::ByteBuffer ToBuffer(const std::string& s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

bool Parse(const grpc::ByteBuffer& b, google::protobuf::Message* m) {
  std::vector<grpc::Slice> slices;
  if (!b.Dump(&slices).ok()) return false;
  std::string s;
  for (const grpc::Slice& sl : slices)
    s.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  return m->ParseFromString(s);
}

}  // namespace

class FakePlugin::Impl {
 public:
  explicit Impl(FakePlugin* f) : f_(f) {}

  // gRPC allows a generic service on one server only: one per Start().
  class Service : public grpc::CallbackGenericService {
   public:
    explicit Service(Impl* impl) : impl_(impl) {}
    grpc::ServerGenericBidiReactor* CreateReactor(
        grpc::GenericCallbackServerContext* ctx) override {
      return impl_->CreateReactor(ctx);
    }

   private:
    Impl* const impl_;
  };

  // One call, unary or stream, on raw bytes (so garbage is possible).
  class Call : public grpc::ServerGenericBidiReactor, public std::enable_shared_from_this<Call> {
   public:
    Call(Impl* impl, bool unary) : impl_(impl), unary_(unary) {}
    void Begin() {
      self_ = shared_from_this();
      StartRead(&in_);
    }

    void OnReadDone(bool ok) override {
      if (!ok) {
        std::lock_guard<std::mutex> l(mu_);
        reading_done_ = true;
        MaybeFinishLocked(grpc::Status::OK);
        return;
      }
      FakePlugin* f = impl_->f_;
      f->requests_.fetch_add(1);
      (unary_ ? f->unary_ : f->stream_msgs_).fetch_add(1);
      uint64_t id = 0;
      v1::Notification n;
      bool parsed;
      if (unary_) {
        v1::DecideRequest r;
        parsed = Parse(in_, &r);
        n = r.notification();
      } else {
        v1::DecideStreamRequest r;
        parsed = Parse(in_, &r);
        id = r.request_id();
        n = r.notification();
      }
      const Mode mode = f->mode_.load();
      std::string out;
      if (!parsed) {
        out = "bad request";
      } else if (mode == Mode::kGarbage) {
        out = std::string("\xff\xff\xff\xff\x0f garbage", 13);
      } else if (mode == Mode::kAnswer) {
        v1::Decision d = impl_->Respond(n);
        if (unary_) {
          v1::DecideResponse resp;
          *resp.mutable_decision() = d;
          out = resp.SerializeAsString();
        } else {
          v1::DecideStreamResponse resp;
          resp.set_request_id(id);
          *resp.mutable_decision() = d;
          out = resp.SerializeAsString();
        }
      }
      if (unary_) {
        std::lock_guard<std::mutex> l(mu_);
        reading_done_ = true;  // one request per unary call
      }
      if (mode != Mode::kHang) {
        const long delay = f->delay_ms_.load();
        if (delay > 0) {
          auto self = shared_from_this();
          impl_->sched_->At(Clock::now() + std::chrono::milliseconds(delay),
                            [self, out] { self->Write(out); });
        } else {
          Write(out);
        }
      }
      if (!unary_) StartRead(&in_);
    }

    void Write(const std::string& s) {
      std::lock_guard<std::mutex> l(mu_);
      impl_->f_->answers_.fetch_add(1);  // also one too late for its call
      if (finished_) return;
      ++answers_queued_;
      out_.push_back(ToBuffer(s));
      if (!writing_) {
        writing_ = true;
        StartWrite(&out_.front());
      }
    }

    void OnWriteDone(bool ok) override {
      std::lock_guard<std::mutex> l(mu_);
      out_.pop_front();
      if (ok && !out_.empty() && !finished_) {
        StartWrite(&out_.front());
        return;
      }
      writing_ = false;
      if (!ok) reading_done_ = true;
      MaybeFinishLocked(grpc::Status::OK);
    }

    void OnCancel() override {
      std::lock_guard<std::mutex> l(mu_);
      cancelled_ = true;
      if (!finished_ && !writing_) {
        finished_ = true;
        Finish(grpc::Status::CANCELLED);
      }
    }

    void OnDone() override { auto keep = std::move(self_); }

   private:
    void MaybeFinishLocked(const grpc::Status& s) {
      if (finished_ || writing_) return;
      // A unary call ends after its one answer; a hung unary call waits for
      // cancellation; a stream ends when the client stops writing.
      if (unary_ && answers_queued_ == 0 && !cancelled_) return;
      if (!reading_done_ && !cancelled_) return;
      finished_ = true;
      Finish(s);
    }

    Impl* const impl_;
    const bool unary_;
    std::shared_ptr<Call> self_;
    grpc::ByteBuffer in_;
    std::mutex mu_;
    std::deque<grpc::ByteBuffer> out_;
    bool writing_ = false, finished_ = false, reading_done_ = false, cancelled_ = false;
    int answers_queued_ = 0;
  };

  class Unimplemented : public grpc::ServerGenericBidiReactor {
   public:
    Unimplemented() { Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "")); }
    void OnDone() override { delete this; }
  };

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) {
    if (ctx->method() == kDecide || ctx->method() == kDecideStream) {
      const bool unary = ctx->method() == kDecide;
      if (!unary) f_->streams_.fetch_add(1);
      auto c = std::make_shared<Call>(this, unary);
      c->Begin();
      return c.get();
    }
    return new Unimplemented();
  }

  v1::Decision Respond(const v1::Notification& n) {
    Responder r;
    {
      std::lock_guard<std::mutex> l(mu_);
      r = responder_;
    }
    return r ? r(n) : AllowDecision();
  }

  FakePlugin* const f_;
  std::unique_ptr<Scheduler> sched_ = std::make_unique<Scheduler>();
  std::mutex mu_;
  Responder responder_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  bool serving_ = true;
};

FakePlugin::FakePlugin() : impl_(std::make_unique<Impl>(this)) {}

FakePlugin::~FakePlugin() { Stop(); }

absl::Status FakePlugin::Start(const std::string& address,
                               std::shared_ptr<grpc::ServerCredentials> creds) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder b;
  b.AddListeningPort(address, creds != nullptr ? creds : grpc::InsecureServerCredentials());
  impl_->service_ = std::make_unique<Impl::Service>(impl_.get());
  b.RegisterCallbackGenericService(impl_->service_.get());
  impl_->server_ = b.BuildAndStart();
  if (impl_->server_ == nullptr) return absl::UnavailableError("cannot listen on " + address);
  SetServing(impl_->serving_);
  return absl::OkStatus();
}

void FakePlugin::Stop() {
  if (impl_->server_ == nullptr) return;
  impl_->server_->Shutdown(std::chrono::system_clock::now());
  impl_->server_->Wait();
  impl_->server_.reset();
}

void FakePlugin::set_responder(Responder r) {
  std::lock_guard<std::mutex> l(impl_->mu_);
  impl_->responder_ = std::move(r);
}

void FakePlugin::SetServing(bool serving) {
  impl_->serving_ = serving;
  if (impl_->server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* h = impl_->server_->GetHealthCheckService();
  if (h == nullptr) return;
  h->SetServingStatus(serving);  // "" and every named service
  h->SetServingStatus("seccompagent.v1.PolicyPlugin", serving);
}

}  // namespace seccomp_agent::plugin::testing
