// The agent's policies: the default one (--policy, else `default.yaml` in
// --policy_dir, else the built-in) and every NAME.yaml / NAME.json in
// --policy_dir, each complete (rules, default action, plugins, injection
// settings, redirect_roots).
//
// Binding (Bind, at handoff, fixed for the container's life): the
// listenerMetadata "seccomp-agent.io/policy=NAME" (what the OCI hook
// writes); else the annotation seccomp-agent.io/policy; else the first
// matching selector (agent/policy/selector.h, shared with the hook); else
// the default. A name with no loadable policy binds the container to an
// empty slot: its notifications fail closed (EngineOptions::
// policy_error_errno), with one log line naming container and policy.
//
// Reload (Reload: SIGHUP, `seccomp-agentctl reload`, and the inotify watch
// on --policy_dir): each file reloads as a whole, into a new PolicyBundle
// with its own injector, plugin dispatcher and router, installed in the
// name's slot in one step; containers bound to the name use it from their
// next notification, and decisions in flight finish on the bundle they
// started with (the engine holds it). The injector and the dispatcher are
// carried over unchanged when their settings did not change (the
// emulation's replay guard and the plugin cache and connections survive).
// A file that fails keeps the previous version and says why; the other
// files are unaffected.
#ifndef SECCOMP_AGENT_POLICY_SET_H_
#define SECCOMP_AGENT_POLICY_SET_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/common/fd.h"
#include "agent/engine/action_router.h"
#include "agent/engine/engine.h"
#include "agent/injector/injector.h"
#include "agent/plugin/dispatcher.h"
#include "agent/policy/policy.h"
#include "agent/policy/selector.h"
#include "agent/seccomp/unotify.h"

namespace seccomp_agent {

inline constexpr char kDefaultPolicyName[] = "default";

// One loaded version of a named policy and everything it runs with.
struct PolicyBundle : BoundPolicy {
  std::string source;  // the file, or "built-in"
  std::string text;    // the file's bytes (a watch reloads only changed files)
  injector::InjectorOptions injector_options;
  std::shared_ptr<injector::Injector> injector;
  std::vector<std::string> redirect_roots;            // what the dispatcher enforces
  std::shared_ptr<plugin::PluginDispatcher> plugins;  // null: no plugins
  std::unique_ptr<ActionRouter> router;
};

struct PolicySetOptions {
  std::string default_file;  // --policy; "" = <dir>/default.{yaml,json}, else built-in
  std::string dir;           // --policy_dir; "" = only the default policy
  std::vector<PolicySelector> selectors;
  UnotifyInterface* unotify = nullptr;       // null: DefaultUnotify()
  plugin::DispatcherOptions plugin_options;  // redirect_roots come from each policy
  int policy_error_errno = 1;                // for the log line of a container that fails closed
};

// A policy as the admin API and /metrics show it.
struct PolicyStatus {
  std::string name;
  uint64_t version = 0;  // 0: never loaded
  std::string source;
  int rules = 0;
  std::string error;  // the last load's error; "" when it loaded
};

class Graveyard;

class PolicySet {
 public:
  // Loads the default policy (an error fails the agent's start) and every
  // policy in the directory (an error there is logged; that name fails
  // closed until a reload fixes it).
  static absl::StatusOr<std::unique_ptr<PolicySet>> Open(PolicySetOptions options);
  ~PolicySet();

  // The slot of the policy `info` binds to (see the file comment).
  std::shared_ptr<PolicySlot> Bind(const ContainerInfo& info);
  // The name `info` binds to and which rule chose it ("listenerMetadata",
  // "annotation", "selectors[N]", "default"). Pure.
  std::pair<std::string, std::string> NameFor(const ContainerInfo& info) const;

  // Re-reads the policies. A file whose bytes did not change keeps its
  // version; `changed_only` (the watch) also keeps quiet about it. Error: the
  // names that failed and why (each kept its previous version), or
  // FailedPrecondition when there is no file to reload at all.
  absl::Status Reload(bool changed_only = false);

  // Starts watching the directory with inotify: a change reloads the
  // changed files. No-op without a directory.
  absl::Status Watch();

  std::shared_ptr<const PolicyBundle> Current(const std::string& name) const;
  std::vector<PolicyStatus> Status() const;
  // (policy name, stats) of every plugin of every policy in force.
  std::vector<std::pair<std::string, plugin::PluginStats>> PluginStats() const;
  uint64_t reloads_ok() const { return reloads_ok_.load(); }
  uint64_t reloads_failed() const { return reloads_failed_.load(); }
  const std::string& dir() const { return options_.dir; }

 private:
  struct Named;
  explicit PolicySet(PolicySetOptions options);
  // Where NAME's file is ("" with an OK status: none; error: ambiguous).
  absl::StatusOr<std::string> FileOf(const std::string& name) const;
  std::set<std::string> NamesInDir() const;
  // (Re)loads one name: true when a new version is in force, false when
  // its file did not change (or is gone: the previous version stays).
  absl::StatusOr<bool> LoadName(const std::string& name);
  bool Plain(const std::string& name) const;  // the --policy file
  void LogFailure(const std::string& name, const PolicyBundle* before, const absl::Status& s);
  void LogSuccess(const std::string& name, const PolicyBundle& now, bool changed);
  absl::StatusOr<std::shared_ptr<PolicyBundle>> Build(const std::string& name,
                                                      std::shared_ptr<const CompiledPolicy> policy,
                                                      const PolicyBundle* prev);
  Named& NamedLocked(const std::string& name);  // reload_mu_ held
  void WatchLoop();

  const PolicySetOptions options_;
  UnotifyInterface& unotify_;
  std::shared_ptr<Graveyard> graveyard_;  // outlives every dispatcher
  std::mutex reload_mu_;                  // one load at a time
  mutable std::mutex mu_;                 // guards named_
  std::map<std::string, std::unique_ptr<Named>> named_;
  std::atomic<uint64_t> reloads_ok_{0}, reloads_failed_{0};
  UniqueFd inotify_, stop_;
  std::thread watcher_;
};

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_POLICY_SET_H_
