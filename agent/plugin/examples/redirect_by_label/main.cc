// redirect_by_label: an example seccomp-agent policy plugin (see README.md).
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "agent/plugin/examples/redirect_by_label/redirect_by_label.h"

ABSL_FLAG(std::string, listen, "unix:///run/seccomp-agent/redirect-by-label.sock",
          "gRPC address to serve on (unix:///path or host:port)");
ABSL_FLAG(std::string, label, "seccomp.example.com/redirect",
          "annotation KEY or KEY=VALUE that marks containers to redirect");
ABSL_FLAG(std::vector<std::string>, map, {}, "comma-separated SRC=DST exact path mappings (absolute paths)");
ABSL_FLAG(std::vector<std::string>, prefix, {},
          "comma-separated SRC/=DST/ prefix mappings (directories, trailing /)");
ABSL_FLAG(uint32_t, cache_ttl_ms, 10000, "cache hint TTL sent with decisions (0: none)");
ABSL_FLAG(bool, others_no_opinion, false,
          "answer no_opinion (defer to the next rule) instead of allow for unlabelled containers");

namespace {

bool ParseMap(const std::vector<std::string>& items, std::map<std::string, std::string>* out) {
  for (const std::string& item : items) {
    std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty() || kv[1].empty()) {
      std::fprintf(stderr, "bad mapping \"%s\" (want SRC=DST)\n", item.c_str());
      return false;
    }
    (*out)[kv[0]] = kv[1];
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  seccomp_agent::examples::RedirectByLabelConfig cfg;
  const std::string label = absl::GetFlag(FLAGS_label);
  std::vector<std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
  cfg.label_key = kv[0];
  if (kv.size() == 2) cfg.label_value = kv[1];
  if (!ParseMap(absl::GetFlag(FLAGS_map), &cfg.exact) ||
      !ParseMap(absl::GetFlag(FLAGS_prefix), &cfg.prefix)) {
    return 2;
  }
  cfg.cache_ttl_ms = absl::GetFlag(FLAGS_cache_ttl_ms);
  cfg.others_no_opinion = absl::GetFlag(FLAGS_others_no_opinion);

  // SIGINT/SIGTERM end the server cleanly (sigwait below).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  seccomp_agent::examples::RedirectByLabelService service(cfg);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  const std::string addr = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(addr, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "redirect_by_label: cannot listen on %s\n", addr.c_str());
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus("seccompagent.v1.PolicyPlugin", true);
  std::fprintf(stderr, "redirect_by_label: serving on %s (label %s, %zu exact, %zu prefix mappings)\n",
               addr.c_str(), label.c_str(), cfg.exact.size(), cfg.prefix.size());
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "redirect_by_label: signal %d, shutting down\n", sig);
  server->GetHealthCheckService()->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}
