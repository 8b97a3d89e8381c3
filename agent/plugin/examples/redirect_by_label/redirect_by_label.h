// Example PolicyPlugin: containers whose annotations carry a given label get
// their opens redirected through a path map; everything else is allowed.
//
//   label "seccomp.example.com/redirect" present (and equal to `label_value`
//   when that is set)  + open/openat of a mapped path  -> redirect_open
//   anything else                                      -> allow (or no_opinion)
//
// Decisions carry cache hints: an unlabelled container's syscall is allowed
// for every argument (SCOPE_SYSCALL_CONTAINER); a labelled container's
// decision depends on the path (SCOPE_EXACT_ARGS).
#ifndef SECCOMP_AGENT_PLUGIN_EXAMPLES_REDIRECT_BY_LABEL_REDIRECT_BY_LABEL_H_
#define SECCOMP_AGENT_PLUGIN_EXAMPLES_REDIRECT_BY_LABEL_REDIRECT_BY_LABEL_H_

#include <map>
#include <string>

#include "proto/seccompagent/v1/plugin.grpc.pb.h"

namespace seccomp_agent::examples {

struct RedirectByLabelConfig {
  std::string label_key;                      // annotation key that marks a container
  std::string label_value;                    // required value; "" = any value
  std::map<std::string, std::string> exact;   // path -> replacement
  std::map<std::string, std::string> prefix;  // "/dir/" -> "/other/"
  uint32_t cache_ttl_ms = 10000;              // 0: no cache hints
  bool others_no_opinion = false;             // defer instead of allow
};

// The decision for one notification (pure; the service calls it).
seccompagent::v1::Decision DecideRedirectByLabel(const RedirectByLabelConfig& cfg,
                                                 const seccompagent::v1::Notification& n);

// The gRPC service (callback API): unary Decide and DecideStream.
class RedirectByLabelService final : public seccompagent::v1::PolicyPlugin::CallbackService {
 public:
  explicit RedirectByLabelService(RedirectByLabelConfig cfg) : cfg_(std::move(cfg)) {}

  grpc::ServerUnaryReactor* Decide(grpc::CallbackServerContext* ctx,
                                   const seccompagent::v1::DecideRequest* req,
                                   seccompagent::v1::DecideResponse* resp) override;
  grpc::ServerBidiReactor<seccompagent::v1::DecideStreamRequest,
                          seccompagent::v1::DecideStreamResponse>*
  DecideStream(grpc::CallbackServerContext* ctx) override;

 private:
  const RedirectByLabelConfig cfg_;
};

}  // namespace seccomp_agent::examples

#endif  // SECCOMP_AGENT_PLUGIN_EXAMPLES_REDIRECT_BY_LABEL_REDIRECT_BY_LABEL_H_
