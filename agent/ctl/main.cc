// seccomp-agentctl: the admin CLI of seccomp-agent.
//
//   seccomp-agentctl [flags] list      containers the agent serves
//   seccomp-agentctl [flags] stats     agent-wide counters
//   seccomp-agentctl [flags] watch     live decisions (Ctrl-C ends)
//   seccomp-agentctl [flags] reload    re-read the policy file (like SIGHUP)
//   seccomp-agentctl [flags] health    exit 0 iff the agent reports SERVING
//
// Tables for people; --json prints the proto3 JSON mapping (watch: one
// object per line). Exit status: 0 ok, 1 the call failed (message on
// stderr), 2 usage.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/ctl/format.h"
#include "grpcpp/grpcpp.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/seccompagent/v1/admin.grpc.pb.h"

ABSL_FLAG(std::string, socket, "/run/seccomp-agent/admin.sock", "The agent's admin socket.");
ABSL_FLAG(bool, json, false, "Print JSON (proto3 mapping) instead of tables.");
ABSL_FLAG(bool, wide, false, "Print full container ids.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10),
          "Deadline of each call (for watch: to connect).");
ABSL_FLAG(std::string, namespace, "", "list/watch: only this Kubernetes namespace.");
ABSL_FLAG(std::string, container, "", "watch: only this container id.");
ABSL_FLAG(uint32_t, queue_size, 0, "watch: server-side queue (1..65536, 0 = default 1024).");
ABSL_FLAG(int64_t, count, 0, "watch: stop after this many decisions (0 = no limit).");
ABSL_FLAG(absl::Duration, duration, absl::Hours(24),
          "watch: stop after this long (the stream's deadline).");

namespace seccomp_agent::ctl {
namespace {

namespace v1 = ::seccompagent::v1;

int Fail(const grpc::Status& s, const char* what) {
  fprintf(stderr, "seccomp-agentctl: %s: %s (%d)\n", what, s.error_message().c_str(),
          static_cast<int>(s.error_code()));
  return 1;
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
}

int Run(const std::string& cmd) {
  const std::string target = "unix:" + absl::GetFlag(FLAGS_socket);
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto admin = v1::AdminService::NewStub(channel);
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  const bool json = absl::GetFlag(FLAGS_json);
  const bool wide = absl::GetFlag(FLAGS_wide);

  if (cmd == "list") {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    v1::ListContainersRequest req;
    req.set_pod_namespace(absl::GetFlag(FLAGS_namespace));
    v1::ListContainersResponse resp;
    grpc::Status s = admin->ListContainers(&ctx, req, &resp);
    if (!s.ok()) return Fail(s, "list");
    std::cout << (json ? ToJson(resp) + "\n" : FormatContainers(resp, wide));
    return 0;
  }
  if (cmd == "stats") {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    v1::GetStatsResponse resp;
    grpc::Status s = admin->GetStats(&ctx, v1::GetStatsRequest(), &resp);
    if (!s.ok()) return Fail(s, "stats");
    std::cout << (json ? ToJson(resp) + "\n" : FormatStats(resp));
    return 0;
  }
  if (cmd == "reload") {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    v1::ReloadPolicyResponse resp;
    grpc::Status s = admin->ReloadPolicy(&ctx, v1::ReloadPolicyRequest(), &resp);
    if (!s.ok()) return Fail(s, "reload");
    if (json) {
      std::cout << ToJson(resp) << "\n";
    } else {
      std::cout << "policy reloaded: " << resp.policy().source() << " (" << resp.policy().rules()
                << " rules)\n";
      for (const v1::PolicyInfo& p : resp.policies()) {
        if (p.name() == "default") continue;
        std::cout << "  policy " << p.name() << ": " << FormatPolicy(p) << "\n";
      }
    }
    return 0;
  }
  if (cmd == "health") {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp);
    if (!s.ok()) return Fail(s, "health");
    const std::string name =
        grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
    std::cout << (json ? ToJson(resp) : name) << "\n";
    return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
  }
  if (cmd == "watch") {
    if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
      fprintf(stderr, "seccomp-agentctl: watch: cannot connect to %s within %s\n",
              absl::GetFlag(FLAGS_socket).c_str(), absl::FormatDuration(timeout).c_str());
      return 1;
    }
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::GetFlag(FLAGS_duration));
    v1::WatchDecisionsRequest req;
    req.set_container_id(absl::GetFlag(FLAGS_container));
    req.set_pod_namespace(absl::GetFlag(FLAGS_namespace));
    req.set_queue_size(absl::GetFlag(FLAGS_queue_size));
    auto reader = admin->WatchDecisions(&ctx, req);
    // Wait for the server's headers so "watching" means subscribed.
    reader->WaitForInitialMetadata();
    if (!json) {
      fprintf(stderr, "watching decisions (Ctrl-C to stop)\n");
      std::cout << WatchHeader() << std::flush;
    }
    const int64_t limit = absl::GetFlag(FLAGS_count);
    int64_t seen = 0;
    v1::WatchDecisionsResponse ev;
    while (reader->Read(&ev)) {
      std::cout << (json ? ToJson(ev) + "\n" : FormatWatchEvent(ev, wide)) << std::flush;
      if (ev.has_decision() && limit > 0 && ++seen >= limit) {
        ctx.TryCancel();
        break;
      }
    }
    grpc::Status s = reader->Finish();
    if (limit > 0 && seen >= limit) return 0;
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return 0;  // --duration elapsed
    if (!s.ok()) return Fail(s, "watch");
    return 0;
  }
  fprintf(stderr, "seccomp-agentctl: unknown command \"%s\"\n%s\n", cmd.c_str(),
          std::string(absl::ProgramUsageMessage()).c_str());
  return 2;
}

}  // namespace
}  // namespace seccomp_agent::ctl

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "seccomp-agentctl [--socket=PATH] [--json] [--timeout=10s] list|stats|watch|reload|health\n"
      "  list   [--namespace=NS] [--wide]\n"
      "  watch  [--container=ID] [--namespace=NS] [--count=N] [--duration=D] [--queue_size=N]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    fprintf(stderr, "%s\n", std::string(absl::ProgramUsageMessage()).c_str());
    return 2;
  }
  return seccomp_agent::ctl::Run(args[1]);
}
