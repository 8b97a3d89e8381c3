#include "agent/policy_set.h"

#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <fstream>
#include <functional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/log.h"
#include "agent/common/status.h"
#include "agent/engine/substitute_plan.h"
#include "google/protobuf/util/message_differencer.h"
#include "oci-hook/hook_protocol.h"

namespace seccomp_agent {

// Destroys plugin dispatchers on its own thread: the last reference to a
// bundle may be dropped by a dispatcher's callback (the decision in flight
// that held it), and a dispatcher cannot be destroyed from its own thread.
class Graveyard {
 public:
  Graveyard() : thread_([this] { Loop(); }) {}
  ~Graveyard() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Bury(std::function<void()> f) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(f));
    cv_.notify_all();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left
      std::function<void()> f = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      f();
      f = nullptr;
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the rest exists
};

struct PolicySet::Named {
  std::shared_ptr<PolicySlot> slot;
  std::shared_ptr<const PolicyBundle> current;  // null: never loaded
  std::string error;                            // the last load's
  uint64_t version = 0;
};

namespace {

bool ReadWhole(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return !in.bad();
}

bool Same(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

bool SamePlugins(const v1::Policy& a, const v1::Policy& b) {
  if (a.plugins_size() != b.plugins_size()) return false;
  for (int i = 0; i < a.plugins_size(); ++i) {
    if (!Same(a.plugins(i), b.plugins(i))) return false;
  }
  if (a.redirect_roots_size() != b.redirect_roots_size()) return false;
  for (int i = 0; i < a.redirect_roots_size(); ++i) {
    if (a.redirect_roots(i) != b.redirect_roots(i)) return false;
  }
  return true;
}

constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

std::shared_ptr<const BoundPolicy> Unloaded(const std::string& name, const std::string& error) {
  auto b = std::make_shared<BoundPolicy>();
  b->name = name;
  b->error = error;
  return b;
}

}  // namespace

PolicySet::PolicySet(PolicySetOptions options)
    : options_(std::move(options)),
      unotify_(options_.unotify != nullptr ? *options_.unotify : DefaultUnotify()),
      graveyard_(std::make_shared<Graveyard>()) {}

PolicySet::~PolicySet() {
  if (watcher_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_.get(), &one, sizeof(one));
    watcher_.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  named_.clear();  // dispatchers go to the graveyard, which drains last
}

absl::StatusOr<std::unique_ptr<PolicySet>> PolicySet::Open(PolicySetOptions options) {
  std::unique_ptr<PolicySet> set(new PolicySet(std::move(options)));
  std::lock_guard<std::mutex> reload(set->reload_mu_);
  absl::StatusOr<bool> d = set->LoadName(kDefaultPolicyName);
  if (!d.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load policy: ", d.status().message()));
  }
  for (const std::string& name : set->NamesInDir()) {
    if (name == kDefaultPolicyName) continue;
    absl::StatusOr<bool> s = set->LoadName(name);
    if (!s.ok()) {
      spdlog::error(
          "policy {} failed to load (its containers fail closed until a reload fixes "
          "it): {}",
          name, std::string(s.status().message()));
    }
  }
  return set;
}

PolicySet::Named& PolicySet::NamedLocked(const std::string& name) {
  std::unique_ptr<Named>& n = named_[name];
  if (!n) {
    n = std::make_unique<Named>();
    n->slot = std::make_shared<PolicySlot>(Unloaded(
        name, options_.dir.empty() ? absl::StrCat("no policy \"", name, "\" (no --policy_dir)")
                                   : absl::StrCat("no policy \"", name, "\" in ", options_.dir)));
  }
  return *n;
}

absl::StatusOr<std::string> PolicySet::FileOf(const std::string& name) const {
  if (name == kDefaultPolicyName && !options_.default_file.empty()) return options_.default_file;
  if (options_.dir.empty()) return std::string();
  return PolicyFileIn(options_.dir, name);
}

std::set<std::string> PolicySet::NamesInDir() const {
  std::set<std::string> names;
  if (options_.dir.empty()) return names;
  DIR* d = opendir(options_.dir.c_str());
  if (d == nullptr) {
    spdlog::error("policy directory {}: {}", options_.dir, strerror(errno));
    return names;
  }
  while (dirent* e = readdir(d)) {
    absl::string_view f = e->d_name;
    for (absl::string_view ext : {".yaml", ".json"}) {
      if (!absl::EndsWith(f, ext)) continue;
      std::string stem(f.substr(0, f.size() - ext.size()));
      if (CheckPolicyName(stem).ok()) names.insert(stem);  // skips .hidden, editor files
    }
  }
  closedir(d);
  return names;
}

absl::StatusOr<std::shared_ptr<PolicyBundle>> PolicySet::Build(
    const std::string& name, std::shared_ptr<const CompiledPolicy> policy,
    const PolicyBundle* prev) {
  const v1::Policy& proto = policy->proto();
  auto b = std::make_shared<PolicyBundle>();
  b->name = name;
  b->policy = policy;
  b->injector_options = InjectorOptionsFromProto(proto.injection());
  if (prev != nullptr && Same(prev->policy->proto().injection(), proto.injection())) {
    b->injector = prev->injector;  // keeps the emulation's replay guard
  } else {
    b->injector = std::make_shared<injector::Injector>(b->injector_options, unotify_);
  }
  b->redirect_roots.assign(proto.redirect_roots().begin(), proto.redirect_roots().end());
  if (prev != nullptr && SamePlugins(prev->policy->proto(), proto)) {
    b->plugins = prev->plugins;  // keeps the cache and the connections
  } else if (proto.plugins_size() > 0) {
    plugin::DispatcherOptions popts = options_.plugin_options;
    popts.redirect_roots = b->redirect_roots;
    auto d =
        plugin::PluginDispatcher::Create({proto.plugins().begin(), proto.plugins().end()}, popts);
    if (!d.ok())
      return absl::Status(d.status().code(), absl::StrCat("plugins: ", d.status().message()));
    std::shared_ptr<Graveyard> g = graveyard_;
    b->plugins = std::shared_ptr<plugin::PluginDispatcher>(
        d->release(), [g](plugin::PluginDispatcher* p) { g->Bury([p] { delete p; }); });
    for (const auto& p : proto.plugins()) {
      spdlog::info("policy {}: plugin {} at {} (timeout {} ms, {})", name, p.name(), p.address(),
                   p.timeout_ms() ? p.timeout_ms() : 100, p.stream() ? "stream" : "unary");
    }
  }
  b->router = std::make_unique<ActionRouter>(unotify_, b->injector.get(), b->plugins.get());
  b->handler = b->router.get();
  return b;
}

absl::StatusOr<bool> PolicySet::LoadName(const std::string& name) {
  std::shared_ptr<const PolicyBundle> prev;
  uint64_t version;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Named& n = NamedLocked(name);
    prev = n.current;
    version = n.version + 1;
  }
  const bool is_default = name == kDefaultPolicyName;
  absl::StatusOr<std::string> path = FileOf(name);
  std::string text;
  absl::StatusOr<std::shared_ptr<const CompiledPolicy>> compiled;
  if (path.ok() && path->empty()) {
    if (prev != nullptr) {
      if (!is_default) spdlog::warn("policy {}: its file is gone; keeping {}", name, prev->Label());
      return false;
    }
    if (!is_default) return absl::NotFoundError(absl::StrCat("no policy \"", name, "\""));
    compiled = CompiledPolicy::BuiltinDefault();
  } else if (!path.ok()) {
    compiled = path.status();
  } else if (!ReadWhole(*path, &text)) {
    compiled = ErrnoStatus(errno, absl::StrCat("read ", *path));
  } else if (prev != nullptr && prev->text == text) {
    std::lock_guard<std::mutex> lock(mu_);
    NamedLocked(name).error.clear();  // a failed load before: the file is fine again
    return false;
  } else {
    compiled = CompiledPolicy::LoadString(text, *path);
  }
  absl::StatusOr<std::shared_ptr<PolicyBundle>> b =
      compiled.ok() ? Build(name, *compiled, prev.get()) : compiled.status();
  std::lock_guard<std::mutex> lock(mu_);
  Named& n = NamedLocked(name);
  if (!b.ok()) {
    n.error = std::string(b.status().message());
    if (prev == nullptr) n.slot->Set(Unloaded(name, n.error));
    return b.status();
  }
  (*b)->version = version;
  (*b)->text = std::move(text);
  (*b)->source = path.ok() && !path->empty() ? *path : (*compiled)->source();
  n.version = version;
  n.current = *b;
  n.error.clear();
  n.slot->Set(*b);
  return true;
}

bool PolicySet::Plain(const std::string& name) const {
  return name == kDefaultPolicyName && !options_.default_file.empty();
}

void PolicySet::LogFailure(const std::string& name, const PolicyBundle* before,
                           const absl::Status& s) {
  reloads_failed_++;
  if (Plain(name)) {
    spdlog::error("policy reload failed, keeping the previous policy: {}",
                  std::string(s.message()));
    return;
  }
  spdlog::error("policy {}: reload failed, keeping {}: {}", name,
                before != nullptr ? before->Label() : "none (its containers fail closed)",
                std::string(s.message()));
}

void PolicySet::LogSuccess(const std::string& name, const PolicyBundle& now, bool changed) {
  reloads_ok_++;
  const int rules = now.policy->proto().rules_size();
  const char* same = changed ? "" : " (unchanged)";
  if (Plain(name)) {
    spdlog::info("policy reloaded from {}: {} rules{}", now.source, rules, same);
  } else {
    spdlog::info("policy {} reloaded from {}: {} rules{}", now.Label(), now.source, rules, same);
  }
}

absl::Status PolicySet::Reload(bool changed_only) {
  std::lock_guard<std::mutex> reload(reload_mu_);
  if (options_.default_file.empty() && options_.dir.empty()) {
    return absl::FailedPreconditionError("no --policy file; keeping the built-in policy");
  }
  std::set<std::string> names = NamesInDir();
  names.insert(kDefaultPolicyName);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, n] : named_) {
      if (n->current != nullptr) names.insert(name);  // a removed file: say so
    }
  }
  std::vector<std::string> errors;
  for (const std::string& name : names) {
    std::shared_ptr<const PolicyBundle> before = Current(name);
    absl::StatusOr<bool> changed = LoadName(name);
    if (!changed.ok()) {
      errors.push_back(absl::StrCat(name, ": ", changed.status().message()));
      LogFailure(name, before.get(), changed.status());
    } else if (*changed || !changed_only) {
      LogSuccess(name, *Current(name), *changed);
    }
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
}

std::pair<std::string, std::string> PolicySet::NameFor(const ContainerInfo& info) const {
  if (auto p = hook::PolicyFromListenerMetadata(info.metadata)) return {*p, "listenerMetadata"};
  if (auto a = info.annotations.find(kPolicyAnnotation); a != info.annotations.end()) {
    return {a->second, "annotation"};
  }
  SelectorInput in{&info.annotations, info.id, info.metadata};
  if (auto s = MatchSelectors(options_.selectors, in)) return {*s, "selectors"};
  return {kDefaultPolicyName, "default"};
}

std::shared_ptr<PolicySlot> PolicySet::Bind(const ContainerInfo& info) {
  auto [name, how] = NameFor(info);
  std::shared_ptr<PolicySlot> slot;
  if (absl::Status ok = CheckPolicyName(name); !ok.ok()) {
    slot = std::make_shared<PolicySlot>(Unloaded(name, std::string(ok.message())));
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    slot = NamedLocked(name).slot;
  }
  std::shared_ptr<const BoundPolicy> bound = slot->Get();
  if (bound->policy == nullptr) {
    spdlog::error(
        "container {}: policy \"{}\" (from {}) is not loaded ({}): its trapped syscalls "
        "fail with {}",
        info.id, name, how, bound->error, ErrnoName(options_.policy_error_errno));
  } else {
    spdlog::info("container {}: policy {} (from {})", info.id, bound->Label(), how);
  }
  return slot;
}

std::shared_ptr<const PolicyBundle> PolicySet::Current(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = named_.find(name);
  return it == named_.end() ? nullptr : it->second->current;
}

std::vector<PolicyStatus> PolicySet::Status() const {
  std::vector<PolicyStatus> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, n] : named_) {
    PolicyStatus s;
    s.name = name;
    s.error = n->error.empty() && n->current == nullptr ? n->slot->Get()->error : n->error;
    if (n->current != nullptr) {
      s.version = n->current->version;
      s.source = n->current->source;
      s.rules = n->current->policy->proto().rules_size();
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::pair<std::string, plugin::PluginStats>> PolicySet::PluginStats() const {
  std::vector<std::pair<std::string, plugin::PluginStats>> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, n] : named_) {
    if (n->current == nullptr || n->current->plugins == nullptr) continue;
    for (plugin::PluginStats& st : n->current->plugins->Stats())
      out.emplace_back(name, std::move(st));
  }
  return out;
}

absl::Status PolicySet::Watch() {
  if (options_.dir.empty()) return absl::OkStatus();
  inotify_.reset(inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!inotify_) return ErrnoStatus(errno, "inotify_init1");
  if (inotify_add_watch(inotify_.get(), options_.dir.c_str(), kWatchMask) < 0) {
    return ErrnoStatus(errno, absl::StrCat("inotify_add_watch ", options_.dir));
  }
  stop_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_) return ErrnoStatus(errno, "eventfd");
  watcher_ = std::thread([this] { WatchLoop(); });
  spdlog::info("watching {} for policy changes", options_.dir);
  return absl::OkStatus();
}

// A change reloads the changed files once the directory has been quiet for
// 200 ms (an editor or `kubectl` writes in several steps). When the watched
// directory itself goes away (a Kubernetes ConfigMap volume swaps its
// `..data` directory on update), the path is watched again.
void PolicySet::WatchLoop() {
  alignas(inotify_event) char buf[4096];
  bool pending = false;
  for (;;) {
    pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    int r = poll(fds, 2, pending ? 200 : -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (fds[1].revents & POLLIN)) return;
    if (r == 0) {
      pending = false;
      absl::Status s = Reload(/*changed_only=*/true);
      if (!s.ok()) spdlog::warn("policy directory changed: {}", std::string(s.message()));
      continue;
    }
    bool rewatch = false;
    ssize_t n;
    while ((n = read(inotify_.get(), buf, sizeof(buf))) > 0) {
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) rewatch = true;
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
    if (rewatch && inotify_add_watch(inotify_.get(), options_.dir.c_str(), kWatchMask) < 0) {
      spdlog::warn("policy directory {}: cannot watch it again ({}); reload by SIGHUP",
                   options_.dir, strerror(errno));
    }
    pending = true;
  }
}

}  // namespace seccomp_agent
