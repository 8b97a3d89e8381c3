// seccomp_bench: the cost of a decision, side by side, in ONE run.
//
// Every figure is the median of --runs runs and is printed as a ratio to a
// floor measured in the same run (these machines are noisy; absolute times
// mean little across runs). Floors: no seccomp; an ALLOW filter; a minimal
// supervisor (blocking NOTIF_RECV -> NOTIF_SEND) for CONTINUE and for a
// spoofed return; open + ADDFD(SEND) for openat. Then the agent's engine
// in-process with a local rule, a redirect_open carried out by the
// injector's emulation backend (ratio to open + ADDFD), a rule compiled
// into the filter itself (ratio to the ALLOW filter), the agent deciding
// through a REAL gRPC plugin process (the redirect_by_label example, started
// here; the agent's PluginDispatcher in-process behind the ActionRouter, as
// agent/main.cc wires it): cache hit (ratio to the in-process allow) and
// cache miss, unary and stream (ratio to the gRPC floor: a minimal C++ gRPC
// client in a minimal supervisor and a minimal server in its own process,
// the same round trip over a unix socket with the same messages),
// ptrace pass-through, and a scaling run. The plugin targets are printed
// as "plugin-miss/floor ratio" and "plugin-hit/in-process ratio" lines
// (the worse of unary and stream) before the last line, which stays
// "agent/floor ratio".
#include <fcntl.h>
#include <linux/audit.h>
#include <sys/prctl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/bench/grpc_floor.h"
#include "agent/bench/tail_bench.h"
#include "agent/bench/workload.h"
#include "agent/common/log.h"
#include "agent/common/status.h"
#include "agent/engine/action_router.h"
#include "agent/engine/decoder.h"
#include "agent/engine/engine.h"
#include "agent/engine/substitute_plan.h"
#include "agent/injector/injector.h"
#include "agent/plugin/decision.h"
#include "agent/plugin/dispatcher.h"
#include "agent/plugin/examples/redirect_by_label/redirect_by_label.h"
#include "agent/policy/policy.h"
#include "agent/seccomp/task_memory.h"
#include "agent/seccomp/unotify.h"

ABSL_FLAG(bool, quick, false, "Short run (< 2 min): core cases only, fewer iterations.");
ABSL_FLAG(int, runs, 5, "Runs per case; the median is reported.");
ABSL_FLAG(int, iterations, 20000, "Trapped syscalls per run (getppid; openat uses half).");
ABSL_FLAG(std::string, out_dir, "out/bench", "Where the table (bench.md), data and plot go.");
ABSL_FLAG(bool, plot, true, "Render PNG plots with gnuplot.");
ABSL_FLAG(std::string, scale, "1,10,100,1000",
          "Listener counts for the scaling run (empty: skip).");
ABSL_FLAG(int, scale_calls, 100000,
          "Scaling run: calls per point, split over the listeners (>= 50 each).");
ABSL_FLAG(bool, sync_wakeup, true, "Engine: request SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP.");
ABSL_FLAG(std::string, only, "",
          "Run only the cases whose name contains this (and their floors), e.g. for perf; "
          "\"tail\" or \"scale\" also runs the mkdir tail or the 1000-listener point.");
ABSL_FLAG(int, workers, 4, "Engine worker threads (as the agent's --workers).");
ABSL_FLAG(std::string, grpc_floor_server, "",
          "Internal: serve the gRPC floor's minimal PolicyPlugin on this address and do nothing "
          "else (the bench starts itself so).");
ABSL_FLAG(std::string, plugin_bin, "",
          "The redirect_by_label example plugin binary (default: found next to this binary "
          "in bazel-bin, agent/plugin/examples/redirect_by_label/redirect_by_label); "
          "\"none\" skips the plugin cases.");

namespace seccomp_agent::bench {
namespace {

// ---------------------------------------------------------------- helpers

void PinSelf(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu >= 0) {
    CPU_SET(cpu, &set);
  } else {
    for (int i = 0; i < CPU_SETSIZE; ++i) CPU_SET(i, &set);
  }
  // Every thread of this process (gRPC and engine threads created earlier
  // keep the affinity they were born with otherwise).
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* de = readdir(d)) {
      if (de->d_name[0] == '.') continue;
      sched_setaffinity(std::atoi(de->d_name), sizeof(set), &set);
    }
    closedir(d);
  }
  sched_setaffinity(0, sizeof(set), &set);
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

long RssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

void NoopHandler(int) {}

// A supervisor thread stoppable with a signal (its blocking ioctl then
// returns EINTR).
class SupervisorThread {
 public:
  explicit SupervisorThread(std::function<void(std::atomic<bool>&)> body)
      : thread_([this, body] {
          body(stop_);
          done_ = true;
        }) {}
  ~SupervisorThread() {
    stop_ = true;
    // Signal until the body has seen `stop_`: a signal that lands just
    // before the ioctl blocks would otherwise be lost.
    while (!done_.load()) {
      pthread_kill(thread_.native_handle(), SIGUSR1);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

enum class FloorKind { kContinue, kSpoof, kAddfd, kEpollSpoof };

// The minimal supervisor: blocking RECV -> SEND, nothing else. kEpollSpoof
// adds only an epoll_wait before each RECV: the price of watching many
// listeners at once, which any multi-container supervisor pays.
void MinimalSupervisor(int listener, FloorKind kind, std::atomic<bool>& stop) {
  UniqueFd ep;
  if (kind == FloorKind::kEpollSpoof) {
    ep.reset(epoll_create1(EPOLL_CLOEXEC));
    epoll_event ev{};
    ev.events = EPOLLIN;
    epoll_ctl(ep.get(), EPOLL_CTL_ADD, listener, &ev);
  }
  while (!stop) {
    if (ep) {
      epoll_event ev;
      if (epoll_wait(ep.get(), &ev, 1, -1) != 1) continue;
      if (ev.events & EPOLLHUP) return;
    }
    seccomp_notif n;
    memset(&n, 0, sizeof(n));
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &n) != 0) {
      if (errno == EINTR || errno == ENOENT) {
        if (stop) return;
        continue;
      }
      return;
    }
    if (kind == FloorKind::kAddfd) {
      char path[4096];
      iovec local{path, sizeof(path) - 1};
      iovec remote{reinterpret_cast<void*>(n.data.args[1]), 256};
      ssize_t r = process_vm_readv(n.pid, &local, 1, &remote, 1, 0);
      if (r <= 0) continue;
      path[r] = '\0';
      int flags = static_cast<int>(n.data.args[2]);
      int fd = open(path, flags, static_cast<mode_t>(n.data.args[3]));
      seccomp_notif_addfd a{};
      a.id = n.id;
      a.flags = SECCOMP_ADDFD_FLAG_SEND;
      a.srcfd = fd;
      a.newfd_flags = flags & O_CLOEXEC;
      ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
      close(fd);
      continue;
    }
    seccomp_notif_resp r{};
    r.id = n.id;
    if (kind == FloorKind::kContinue) r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
  }
}

// ptrace PTRACE_SYSCALL pass-through of the whole loop.
absl::StatusOr<double> RunPtrace(ChildOptions o) {
  o.filter = Filter::kPtrace;
  SA_ASSIGN_OR_RETURN(Child c, SpawnWorkload(o));
  int status;
  waitpid(c.pid, &status, 0);  // the SIGSTOP
  ptrace(PTRACE_SETOPTIONS, c.pid, nullptr, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL);
  StartChild(c);
  ptrace(PTRACE_SYSCALL, c.pid, nullptr, nullptr);
  double ns = 0;
  for (;;) {
    if (waitpid(c.pid, &status, 0) < 0) break;
    if (WIFEXITED(status) || WIFSIGNALED(status)) break;
    int sig = 0;
    if (WIFSTOPPED(status) && WSTOPSIG(status) != (SIGTRAP | 0x80)) sig = WSTOPSIG(status);
    ptrace(PTRACE_SYSCALL, c.pid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
  }
  ssize_t n = read(c.result.get(), &ns, sizeof(ns));
  if (n != sizeof(ns)) return absl::InternalError("traced workload died");
  return ns;
}

// ------------------------------------------------------------------ plugins

// A plugin process (the C++ example, redirect_by_label), started by the
// bench. It answers `allow` for containers without its label; with
// --cache_ttl_ms > 0 that answer carries a cache hint (syscall + container),
// so every call after the first is a dispatcher cache hit; with 0 every
// call is a gRPC round trip.
struct PluginProc {
  pid_t pid = -1;
  std::string sock;
};

std::string PluginBinary() {
  std::string flag = absl::GetFlag(FLAGS_plugin_bin);
  if (!flag.empty()) return flag;
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return "";
  exe[n] = '\0';
  std::string dir(exe);
  dir = dir.substr(0, dir.rfind('/'));  // .../bin/agent/bench
  return dir + "/../plugin/examples/redirect_by_label/redirect_by_label";
}

// Starts `argv` (stderr to /dev/null) and waits for it to create `sock`.
absl::StatusOr<PluginProc> StartServer(const std::vector<std::string>& argv,
                                       const std::string& sock) {
  PluginProc p;
  p.sock = sock;
  unlink(p.sock.c_str());
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  p.pid = pid;
  for (int i = 0; i < 500; ++i) {  // up to 5 s for the socket to appear
    struct stat st;
    if (stat(p.sock.c_str(), &st) == 0) return p;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return absl::FailedPreconditionError(absl::StrCat(argv[0], " exited, status ", status));
    }
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return absl::DeadlineExceededError(absl::StrCat(argv[0], " did not start listening"));
}

std::string BenchSocket(const std::string& tag) {
  return absl::StrCat("/tmp/seccomp_bench_", getpid(), "_", tag, ".sock");
}

absl::StatusOr<PluginProc> StartPlugin(const std::string& bin, const std::string& tag,
                                       int cache_ttl_ms) {
  const std::string sock = BenchSocket(tag);
  return StartServer({bin, "--listen=unix://" + sock, "--label=bench.example/redirect",
                      absl::StrCat("--cache_ttl_ms=", cache_ttl_ms)},
                     sock);
}

// The gRPC floor's server: this binary again, in --grpc_floor_server mode.
absl::StatusOr<PluginProc> StartFloorServer() {
  const std::string sock = BenchSocket("floor");
  return StartServer({"/proc/self/exe", "--grpc_floor_server=unix://" + sock}, sock);
}

// What the plugin answers a miss (an unlabelled container, no cache hint):
// the floor's server sends the same bytes.
v1::Decision FloorAnswer() {
  examples::RedirectByLabelConfig cfg;
  cfg.cache_ttl_ms = 0;
  return examples::DecideRedirectByLabel(cfg, v1::Notification());
}

void StopPlugin(PluginProc& p) {
  if (p.pid <= 0) return;
  kill(p.pid, SIGTERM);
  waitpid(p.pid, nullptr, 0);
  unlink(p.sock.c_str());
  p.pid = -1;
}

// Sockets of the running plugin processes and of the gRPC floor's server
// ("" = no plugin cases).
std::string g_plugin_sock_cache, g_plugin_sock_nocache, g_floor_sock;

constexpr char kAgentPolicy[] = R"(
version: 1
default_action: {allow: {}}
rules:
  - name: bench-deny
    match: {syscalls: [getppid], containers: {id: "deny"}}
    action: {deny: {errno: EPERM}}
  - name: bench-spoof
    match: {syscalls: [getppid], containers: {id: "spoof"}}
    action: {return: {value: 0}}
  - name: bench-allow-path
    match: {syscalls: [openat], args: {path: "/etc/**"}, containers: {id: "allow-path"}}
    action: {allow: {}}
  - name: bench-redirect
    match: {syscalls: [openat], containers: {id: "redirect"}}
    action: {redirect_open: {exact: {"/etc/hostname": "/etc/hosts"}}}
redirect_roots: [/etc]
injection: {mode: EMULATE}
)";

// The bench policy, plus four plugin rules when the plugin processes run:
// container "plugin-hit-unary" -> plugin hit-unary (the caching plugin), ...
std::string AgentPolicyText() {
  std::string text = kAgentPolicy;
  if (g_plugin_sock_cache.empty()) return text;
  // Rules are inserted before redirect_roots (the end of `rules:`).
  std::string rules, plugins = "plugins:\n";
  for (const char* cache : {"hit", "miss"}) {
    for (const char* mode : {"unary", "stream"}) {
      std::string name = absl::StrCat(cache, "-", mode);
      const std::string& sock =
          std::string(cache) == "hit" ? g_plugin_sock_cache : g_plugin_sock_nocache;
      absl::StrAppend(&rules, "  - name: bench-plugin-", name,
                      "\n    match: {syscalls: [getppid], containers: {id: \"plugin-", name,
                      "\"}}\n    action: {plugin: {name: ", name, "}}\n");
      absl::StrAppend(&plugins, "  - {name: ", name, ", address: \"unix://", sock,
                      "\", timeout_ms: 2000, max_in_flight: 1024, stream: ",
                      std::string(mode) == "stream" ? "true" : "false", "}\n");
    }
  }
  size_t at = text.find("redirect_roots:");
  text.insert(at, rules);
  text += plugins;
  return text;
}

std::shared_ptr<const CompiledPolicy> AgentPolicy() {
  auto p = CompiledPolicy::LoadString(AgentPolicyText(), "bench.yaml");
  if (!p.ok()) {
    fprintf(stderr, "bench policy: %s\n", std::string(p.status().message()).c_str());
    exit(1);
  }
  return *p;
}

// One measured case: returns ns per trapped call for one run.
using RunFn = std::function<absl::StatusOr<double>(const ChildOptions&)>;

RunFn Plain(Filter f) {
  return [f](const ChildOptions& base) -> absl::StatusOr<double> {
    ChildOptions o = base;
    o.filter = f;
    SA_ASSIGN_OR_RETURN(Child c, SpawnWorkload(o));
    StartChild(c);
    return FinishChild(c);
  };
}

RunFn Floor(FloorKind kind) {
  return [kind](const ChildOptions& base) -> absl::StatusOr<double> {
    ChildOptions o = base;
    o.filter = Filter::kNotify;
    SA_ASSIGN_OR_RETURN(Child c, SpawnWorkload(o));
    int l = c.listener.get();
    absl::StatusOr<double> r;
    {
      SupervisorThread sup(
          [l, kind](std::atomic<bool>& stop) { MinimalSupervisor(l, kind, stop); });
      StartChild(c);
      r = FinishChild(c);
    }
    return r;
  };
}

// The gRPC floor's supervisor: blocking RECV, the Notification the agent
// would send for it (same container id, so the same size), one round trip
// to the minimal server, SEND CONTINUE (the plugin's answer is allow).
void GrpcFloorSupervisor(int listener, GrpcFloorClient* client, const std::string& container_id,
                         std::atomic<bool>& stop) {
  ContainerInfo info;
  info.id = container_id;
  while (!stop) {
    seccomp_notif n;
    memset(&n, 0, sizeof(n));
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &n) != 0) {
      if (errno == EINTR || errno == ENOENT) continue;
      return;
    }
    if (!client->RoundTrip(plugin::BuildNotification(EventOf(info, n), 4096)).ok()) return;
    seccomp_notif_resp r{};
    r.id = n.id;
    r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
  }
}

// The floor of a plugin cache miss: `container_id` names the agent case it
// is the floor of (its Notification carries that id).
RunFn GrpcFloor(bool stream, const std::string& container_id) {
  return [stream, container_id](const ChildOptions& base) -> absl::StatusOr<double> {
    ChildOptions o = base;
    o.filter = Filter::kNotify;
    SA_ASSIGN_OR_RETURN(std::unique_ptr<GrpcFloorClient> client,
                        GrpcFloorClient::Connect("unix://" + g_floor_sock, stream));
    SA_ASSIGN_OR_RETURN(Child c, SpawnWorkload(o));
    const int l = c.listener.get();
    GrpcFloorClient* cl = client.get();
    absl::StatusOr<double> r;
    {
      SupervisorThread sup([l, cl, container_id](std::atomic<bool>& stop) {
        GrpcFloorSupervisor(l, cl, container_id, stop);
      });
      StartChild(c);
      r = FinishChild(c);
    }
    return r;
  };
}

// Waits (up to 10 s) until every plugin of `plugins` reports serving, then
// lets the gRPC threads and the plugin processes go idle. Kills `child`
// when a plugin never does.
absl::Status AwaitPluginsServing(const plugin::PluginDispatcher& plugins, pid_t child) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    std::string not_serving;
    for (const plugin::PluginStats& st : plugins.Stats()) {
      if (st.health != "serving") absl::StrAppend(&not_serving, " ", st.name, " (", st.health, ")");
    }
    if (not_serving.empty()) break;
    if (std::chrono::steady_clock::now() > give_up) {
      kill(child, SIGKILL);
      waitpid(child, nullptr, 0);
      return absl::UnavailableError(absl::StrCat("plugins not serving after 10 s:", not_serving));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return absl::OkStatus();
}

RunFn Agent(const std::string& container_id) {
  return [container_id](const ChildOptions& base) -> absl::StatusOr<double> {
    ChildOptions o = base;
    o.filter = Filter::kNotify;
    SA_ASSIGN_OR_RETURN(Child c, SpawnWorkload(o));
    EngineOptions eo;
    eo.workers = absl::GetFlag(FLAGS_workers);
    eo.sync_wakeup = absl::GetFlag(FLAGS_sync_wakeup);
    std::shared_ptr<const CompiledPolicy> policy = AgentPolicy();
    // Substitutions as in agent/main.cc: the injector behind an
    // ActionRouter (both outlive the engine).
    injector::Injector inj(InjectorOptionsFromProto(policy->proto().injection()), DefaultUnotify());
    // The plugin dispatcher as agent/main.cc builds it from the policy.
    std::unique_ptr<plugin::PluginDispatcher> plugins;
    std::string plugin_name;
    if (container_id.rfind("plugin-", 0) == 0) {
      plugin_name = container_id.substr(7);
      plugin::DispatcherOptions popts;
      popts.redirect_roots.assign(policy->proto().redirect_roots().begin(),
                                  policy->proto().redirect_roots().end());
      SA_ASSIGN_OR_RETURN(
          plugins,
          plugin::PluginDispatcher::Create(
              {policy->proto().plugins().begin(), policy->proto().plugins().end()}, popts));
      // Warm up: connect (and open the stream) before measuring, with
      // another container so that the cache stays cold for the workload.
      ContainerInfo warm;
      warm.id = "warmup";
      SyscallEvent ev;
      ev.container = &warm;
      ev.pid = getpid();
      ev.arch = AUDIT_ARCH_X86_64;
      ev.nr = SYS_getppid;
      ev.syscall = "getppid";
      for (int i = 0; i < 3; ++i) {
        std::promise<plugin::PluginResult> pr;
        plugins->Decide(plugin_name, ev,
                        [&pr](plugin::PluginResult r) { pr.set_value(std::move(r)); });
        plugin::PluginResult r = pr.get_future().get();
        if (r.kind != plugin::PluginResult::Kind::kAction) {
          kill(c.pid, SIGKILL);
          waitpid(c.pid, nullptr, 0);
          return absl::UnavailableError(
              absl::StrCat("plugin ", plugin_name, " warm-up: ", r.error.ToString()));
        }
      }
      // Steady state, as a long-running agent's: every plugin's channel up
      // and its first health check answered (the dispatcher checks all of
      // them at once when it starts; those round trips and the plugin
      // processes' connection set-up would otherwise run, on the pinned
      // CPU, during the first milliseconds of the measured loop).
      SA_RETURN_IF_ERROR(AwaitPluginsServing(*plugins, c.pid));
    }
    absl::StatusOr<double> ns;
    {
      ActionRouter router(DefaultUnotify(), &inj, plugins.get());
      Engine engine(eo, DefaultUnotify(), policy, nullptr);
      engine.SetActionHandler(&router);
      SA_RETURN_IF_ERROR(engine.Start());
      ContainerInfo info;
      info.id = container_id;
      info.init_pid = c.pid;
      SA_RETURN_IF_ERROR(engine.AddContainer(info, std::move(c.listener)));
      StartChild(c);
      ns = FinishChild(c);
    }
    if (plugins != nullptr && ns.ok()) {
      // Every trapped call must have been decided by the plugin: no errors,
      // and (hit) all but the first from the cache, (miss) none from it.
      SA_ASSIGN_OR_RETURN(plugin::PluginStats st, plugins->StatsFor(plugin_name));
      uint64_t errors = 0;
      for (uint64_t e : st.errors) errors += e;
      const uint64_t calls = static_cast<uint64_t>(o.iterations) + 3;
      const bool hit = plugin_name.rfind("hit", 0) == 0;
      if (errors != 0 || st.calls != calls || st.decisions != calls ||
          (hit ? st.cache_hits + 3 < calls - 1 : st.cache_hits != 0)) {
        return absl::InternalError(absl::StrCat(
            "plugin ", plugin_name, ": calls ", st.calls, " decisions ", st.decisions, " errors ",
            errors, " cache hits ", st.cache_hits, " (expected ", calls, " calls)"));
      }
    }
    return ns;
  };
}

// The plugin cases and their floors (named in the report lines).
constexpr char kInProcessAllow[] = "agent: in-process rule, allow (CONTINUE)";
constexpr char kHitUnary[] = "agent: gRPC plugin, cache hit, unary";
constexpr char kHitStream[] = "agent: gRPC plugin, cache hit, stream";
constexpr char kMissUnary[] = "agent: gRPC plugin, cache miss, unary";
constexpr char kMissStream[] = "agent: gRPC plugin, cache miss, stream";
constexpr char kGrpcFloorUnary[] = "floor: minimal gRPC client + server, unary";
constexpr char kGrpcFloorStream[] = "floor: minimal gRPC client + server, stream";

struct Case {
  std::string name;
  Workload workload;
  RunFn run;
  std::string floor;  // name of the case this one is a ratio to ("" = none)
  int iter_div = 1;   // fewer calls for the slow cases (a gRPC round trip each)
};

struct Result {
  double pinned = 0, unpinned = 0;  // medians
  double pinned_min = 0;            // the fastest pinned run: least disturbed by other load
  // CPU time of this process (the supervisor's or engine's threads; the
  // workload is another process) per trapped call while the workload's loop
  // ran (LastLoopCpuNs: not the setup, e.g. a plugin dispatcher's connect
  // and warm-up calls), median of the pinned runs: what a case costs the
  // supervisor, less sensitive to other load than wall time.
  double cpu_pinned = 0;
};

// ----------------------------------------------------------------- scaling

struct ScalePoint {
  int listeners;
  double calls_per_sec;
  double floor_calls_per_sec = 0;  // the minimal epoll supervisor, same N
  double p50_ns, p99_ns;
  double rss_kb_per_container;
  double heap_kb_per_container = 0;  // malloc'd bytes (mallinfo2) growth / N
};

// The scaling floor: one thread, epoll over all N listeners, RECV -> SEND
// CONTINUE (what the agent answers here), with the same SYNC_WAKE_UP
// setting as the engine. Returns calls/s.
void MultiListenerFloor(const std::vector<UniqueFd>& listeners, std::atomic<bool>& stop) {
  UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
  for (const UniqueFd& l : listeners) {
    if (absl::GetFlag(FLAGS_sync_wakeup)) {
      (void)DefaultUnotify().SetFlags(l.get(), SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = l.get();
    epoll_ctl(ep.get(), EPOLL_CTL_ADD, l.get(), &ev);
  }
  while (!stop) {
    epoll_event ev;
    if (epoll_wait(ep.get(), &ev, 1, -1) != 1) continue;
    if (!(ev.events & EPOLLIN)) {
      epoll_ctl(ep.get(), EPOLL_CTL_DEL, ev.data.fd, nullptr);
      continue;
    }
    seccomp_notif n;
    memset(&n, 0, sizeof(n));
    if (ioctl(ev.data.fd, SECCOMP_IOCTL_NOTIF_RECV, &n) != 0) continue;
    seccomp_notif_resp r{};
    r.id = n.id;
    r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    ioctl(ev.data.fd, SECCOMP_IOCTL_NOTIF_SEND, &r);
  }
}

absl::StatusOr<ScalePoint> RunScale(int n, int calls_each, bool floor) {
  // Latencies of every call of every child, in shared memory.
  size_t slots = static_cast<size_t>(n) * calls_each;
  auto* lat = static_cast<int64_t*>(mmap(nullptr, slots * sizeof(int64_t), PROT_READ | PROT_WRITE,
                                         MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (lat == MAP_FAILED) return ErrnoStatus(errno, "mmap");
  std::vector<Child> children;
  children.reserve(n);
  for (int i = 0; i < n; ++i) {
    ChildOptions o;
    o.workload = Workload::kGetppid;
    o.filter = Filter::kNotify;
    o.iterations = calls_each;
    o.latencies = lat + static_cast<size_t>(i) * calls_each;
    SA_ASSIGN_OR_RETURN(Child c, SpawnWorkload(o));
    children.push_back(std::move(c));
  }
  if (floor) {
    std::vector<UniqueFd> listeners;
    for (auto& c : children) listeners.push_back(std::move(c.listener));
    double secs;
    {
      SupervisorThread sup(
          [&listeners](std::atomic<bool>& stop) { MultiListenerFloor(listeners, stop); });
      auto t0 = std::chrono::steady_clock::now();
      for (auto& c : children) StartChild(c);
      for (auto& c : children) {
        auto r = FinishChild(c);
        if (!r.ok()) return r.status();
      }
      secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    munmap(lat, slots * sizeof(int64_t));
    ScalePoint p{};
    p.listeners = n;
    p.calls_per_sec = slots / secs;
    return p;
  }
  EngineOptions eo;
  eo.sync_wakeup = absl::GetFlag(FLAGS_sync_wakeup);
  Engine engine(eo, DefaultUnotify(), AgentPolicy(), nullptr);
  SA_RETURN_IF_ERROR(engine.Start());
  // Hand freed heap back first, so that growth shows up in VmRSS (else
  // the containers reuse pages earlier cases freed but kept resident).
  malloc_trim(0);
  long rss0 = RssKb();
  const size_t heap0 = mallinfo2().uordblks;
  for (int i = 0; i < n; ++i) {
    ContainerInfo info;
    info.id = absl::StrCat("scale-", i);
    info.init_pid = children[i].pid;
    info.annotations["io.kubernetes.pod.name"] = absl::StrCat("pod-", i);
    SA_RETURN_IF_ERROR(engine.AddContainer(info, std::move(children[i].listener)));
  }
  long rss1 = RssKb();
  const size_t heap1 = mallinfo2().uordblks;
  auto t0 = std::chrono::steady_clock::now();
  for (auto& c : children) StartChild(c);
  for (auto& c : children) {
    auto r = FinishChild(c);
    if (!r.ok()) return r.status();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // RSS per container: the growth of the agent's (this process's) VmRSS from
  // the started engine with no container to the engine holding N, over N:
  // the larger of "N registered, before the calls" and "after all calls"
  // (by then the engine has dropped the exited containers).
  // The workloads are separate processes; the shared latency buffer is not
  // touched by this process before this point.
  long rss2 = RssKb();
  const size_t heap2 = mallinfo2().uordblks;
  std::vector<double> all(lat, lat + slots);
  munmap(lat, slots * sizeof(int64_t));
  std::sort(all.begin(), all.end());
  ScalePoint p;
  p.listeners = n;
  p.calls_per_sec = slots / secs;
  p.p50_ns = all[all.size() / 2];
  p.p99_ns = all[static_cast<size_t>(all.size() * 0.99)];
  p.rss_kb_per_container = static_cast<double>(std::max(rss1, rss2) - rss0) / n;
  p.heap_kb_per_container =
      (static_cast<double>(std::max(heap1, heap2)) - static_cast<double>(heap0)) / 1024.0 / n;
  return p;
}

// One scaling point: agent and floor alternate, 3 times each; the median
// agent run (its latencies and RSS) with the median floor throughput.
absl::StatusOr<ScalePoint> MedianScalePoint(int n, int calls) {
  std::vector<double> floor_tput;
  std::vector<ScalePoint> pts;
  for (int r = 0; r < 3; ++r) {
    SA_ASSIGN_OR_RETURN(ScalePoint f, RunScale(n, calls, /*floor=*/true));
    SA_ASSIGN_OR_RETURN(ScalePoint p, RunScale(n, calls, /*floor=*/false));
    floor_tput.push_back(f.calls_per_sec);
    pts.push_back(p);
  }
  std::sort(pts.begin(), pts.end(), [](const ScalePoint& a, const ScalePoint& b) {
    return a.calls_per_sec < b.calls_per_sec;
  });
  ScalePoint p = pts[pts.size() / 2];
  p.floor_calls_per_sec = Median(floor_tput);
  return p;
}

// ------------------------------------------------- issue 19's ratio lines
// Printed after the table, one per line, before "agent/floor ratio" (which
// stays the last line: scripts parse it).

// unpinned/pinned: per-call medians of a task doing mkdir on tmpfs through
// the engine (path rule, CONTINUE), tail_bench.h.
absl::StatusOr<std::vector<std::string>> TailLines(int runs, int iters) {
  TailOptions t;
  t.runs = runs;
  t.iterations = iters;
  t.workers = absl::GetFlag(FLAGS_workers);
  t.sync_wakeup = absl::GetFlag(FLAGS_sync_wakeup);
  SA_ASSIGN_OR_RETURN(TailResult r, RunMkdirTail(t));
  const std::pair<const char*, TailStats> modes[] = {
      {"pinned", r.pinned}, {"unpinned", r.unpinned}, {"no seccomp, unpinned", r.no_seccomp}};
  for (const auto& [name, st] : modes) {
    fprintf(stderr,
            "  mkdir on tmpfs, path rule -> CONTINUE, %-20s p50 %7.0f p99 %8.0f "
            "mean %7.0f ns\n",
            name, st.p50, st.p99, st.mean);
  }
  if (r.pinned.p50 <= 0 || r.unpinned.p50 <= 0) {
    return absl::InternalError("mkdir tail: no samples");
  }
  return std::vector<std::string>{
      absl::StrFormat("unpinned/pinned ratio: %.2f", r.unpinned.p50 / r.pinned.p50),
      absl::StrFormat("unpinned p99/p50 ratio: %.2f", r.unpinned.p99 / r.unpinned.p50)};
}

// emulation/floor: redirect_open by the emulation backend over open +
// ADDFD(SEND), pinned medians of the cases above (none when not run); then
// the same for this process's CPU time per call (load moves it less).
std::vector<std::string> EmulationLines(std::map<std::string, Result>& results) {
  const std::string emu = "agent: redirect_open (emulation) (openat)";
  const std::string floor = "floor: open + ADDFD(SEND) (openat)";
  if (results.count(emu) == 0 || results.count(floor) == 0 || results[floor].pinned <= 0) return {};
  const Result& e = results[emu];
  const Result& f = results[floor];
  fprintf(stderr,
          "  redirect_open emulation: %.0f ns CPU per call, open + ADDFD floor: %.0f ns "
          "(pinned medians, this process's CPU time)\n",
          e.cpu_pinned, f.cpu_pinned);
  std::vector<std::string> lines = {
      absl::StrFormat("emulation/floor ratio: %.2f", e.pinned / f.pinned)};
  if (f.cpu_pinned > 0) {
    lines.push_back(
        absl::StrFormat("emulation/floor CPU ratio: %.2f", e.cpu_pinned / f.cpu_pinned));
  }
  return lines;
}

// scale-1000/floor: the agent's THROUGHPUT over the epoll floor's at 1000
// listeners (higher is better; issue 19 wants >= 0.90), and the agent's
// RSS per container there. --quick runs the point with few calls.
absl::StatusOr<std::vector<std::string>> ScaleLines(const std::vector<ScalePoint>& scale) {
  absl::StatusOr<ScalePoint> p = absl::NotFoundError("no 1000-listener point");
  for (const ScalePoint& s : scale) {
    if (s.listeners == 1000) p = s;
  }
  if (!p.ok()) p = MedianScalePoint(1000, 30);
  if (!p.ok()) return p.status();
  fprintf(stderr,
          "  scale 1000: agent %.0f calls/s, floor %.0f calls/s, rss/container %.2f KiB, "
          "heap/container %.2f KiB\n",
          p->calls_per_sec, p->floor_calls_per_sec, p->rss_kb_per_container,
          p->heap_kb_per_container);
  return std::vector<std::string>{
      absl::StrFormat("scale-1000/floor ratio: %.2f", p->calls_per_sec / p->floor_calls_per_sec),
      absl::StrFormat("scale-1000 RSS per container: %.2f KiB", p->rss_kb_per_container)};
}

// The plugin targets as lines for scripts: the worse of unary and stream,
// pinned medians of this run (none when the plugin cases did not run);
// then the same for this process's CPU time per call (the agent's or the
// floor client's threads; the plugin and the floor's server are other
// processes): load moves it less than wall time.
std::vector<std::string> PluginLines(std::map<std::string, Result>& results) {
  auto worse = [&](double Result::*m, const char* a1, const char* a2, const char* b1,
                   const char* b2) {
    if (results[a1].*m <= 0 || results[a2].*m <= 0 || results[b1].*m <= 0 || results[b2].*m <= 0) {
      return 0.0;
    }
    return std::max(results[a1].*m / results[b1].*m, results[a2].*m / results[b2].*m);
  };
  for (const char* c : {kInProcessAllow, kHitUnary, kHitStream, kGrpcFloorUnary, kMissUnary,
                        kGrpcFloorStream, kMissStream}) {
    if (results.count(c) != 0) {
      fprintf(stderr, "  %-52s %9.0f ns CPU per call (pinned median, this process)\n", c,
              results[c].cpu_pinned);
    }
  }
  std::vector<std::string> lines;
  for (auto [m, what] : {std::pair{&Result::pinned, ""}, std::pair{&Result::cpu_pinned, " CPU"}}) {
    const double miss = worse(m, kMissUnary, kMissStream, kGrpcFloorUnary, kGrpcFloorStream);
    if (miss > 0) lines.push_back(absl::StrFormat("plugin-miss/floor%s ratio: %.2f", what, miss));
    const double hit = worse(m, kHitUnary, kHitStream, kInProcessAllow, kInProcessAllow);
    if (hit > 0) lines.push_back(absl::StrFormat("plugin-hit/in-process%s ratio: %.2f", what, hit));
  }
  return lines;
}

absl::StatusOr<std::vector<std::string>> PerfRatioLines(std::map<std::string, Result>& results,
                                                        const std::vector<ScalePoint>& scale,
                                                        int runs, int iters) {
  const std::string only = absl::GetFlag(FLAGS_only);
  std::vector<std::string> lines;
  if (only.empty() || only == "tail") {
    SA_ASSIGN_OR_RETURN(lines, TailLines(runs, iters));
  }
  for (std::string& e : EmulationLines(results)) lines.push_back(std::move(e));
  for (std::string& e : PluginLines(results)) lines.push_back(std::move(e));
  if (only.empty() || only == "scale") {
    SA_ASSIGN_OR_RETURN(std::vector<std::string> s, ScaleLines(scale));
    lines.insert(lines.end(), s.begin(), s.end());
  }
  return lines;
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

int Main() {
  InitLogging("warn");
  struct sigaction sa {};
  sa.sa_handler = NoopHandler;  // no SA_RESTART: the ioctl returns EINTR
  sigaction(SIGUSR1, &sa, nullptr);
  rlimit rl{65536, 65536};
  setrlimit(RLIMIT_NOFILE, &rl);

  const bool quick = absl::GetFlag(FLAGS_quick);
  const int runs = std::max(5, absl::GetFlag(FLAGS_runs));
  const int iters = quick ? 10000 : absl::GetFlag(FLAGS_iterations);
  const std::string out_dir = absl::GetFlag(FLAGS_out_dir);
  std::system(absl::StrCat("mkdir -p '", out_dir, "'").c_str());

  std::vector<Case> cases = {
      {"no seccomp", Workload::kGetppid, Plain(Filter::kNone), ""},
      {"ALLOW filter", Workload::kGetppid, Plain(Filter::kAllow), "no seccomp"},
      {"compiled rule (deny in the filter)", Workload::kGetppid, Plain(Filter::kDeny),
       "ALLOW filter"},
      {"floor: minimal supervisor, CONTINUE", Workload::kGetppid, Floor(FloorKind::kContinue), ""},
      {"floor: minimal supervisor, spoofed return", Workload::kGetppid, Floor(FloorKind::kSpoof),
       ""},
      {"floor: epoll + minimal supervisor, spoofed return", Workload::kGetppid,
       Floor(FloorKind::kEpollSpoof), "floor: minimal supervisor, spoofed return"},
      {"agent: in-process rule, deny", Workload::kGetppid, Agent("deny"),
       "floor: minimal supervisor, spoofed return"},
      {"agent: in-process rule, spoof", Workload::kGetppid, Agent("spoof"),
       "floor: minimal supervisor, spoofed return"},
      {kInProcessAllow, Workload::kGetppid, Agent("allow"), "floor: minimal supervisor, CONTINUE"},
      {"floor: open + ADDFD(SEND) (openat)", Workload::kOpenat, Floor(FloorKind::kAddfd), ""},
      {"agent: redirect_open (emulation) (openat)", Workload::kOpenat, Agent("redirect"),
       "floor: open + ADDFD(SEND) (openat)"},
  };
  // The gRPC plugin cases: a real plugin process per cache mode.
  std::string plugin_bin = PluginBinary();
  const bool with_plugins = plugin_bin != "none" && access(plugin_bin.c_str(), X_OK) == 0;
  if (with_plugins) {
    cases.push_back({kHitUnary, Workload::kGetppid, Agent("plugin-hit-unary"), kInProcessAllow});
    cases.push_back({kHitStream, Workload::kGetppid, Agent("plugin-hit-stream"), kInProcessAllow});
    // A miss is a round trip each: a tenth of the calls. Its floor is
    // the same round trip between a minimal client and server.
    const Workload w = Workload::kGetppid;
    cases.push_back({kGrpcFloorUnary, w, GrpcFloor(false, "plugin-miss-unary"), "", 10});
    cases.push_back({kGrpcFloorStream, w, GrpcFloor(true, "plugin-miss-stream"), "", 10});
    cases.push_back({kMissUnary, w, Agent("plugin-miss-unary"), kGrpcFloorUnary, 10});
    cases.push_back({kMissStream, w, Agent("plugin-miss-stream"), kGrpcFloorStream, 10});
  } else {
    fprintf(stderr, "no plugin binary at %s: skipping the gRPC plugin cases (see --plugin_bin)\n",
            plugin_bin.c_str());
  }
  if (!quick) {
    cases.push_back({"ptrace PTRACE_SYSCALL pass-through", Workload::kGetppid,
                     [](const ChildOptions& o) { return RunPtrace(o); },
                     "floor: minimal supervisor, CONTINUE"});
    cases.push_back({"no seccomp (openat)", Workload::kOpenat, Plain(Filter::kNone), ""});
    cases.push_back(
        {"floor: CONTINUE (openat)", Workload::kOpenat, Floor(FloorKind::kContinue), ""});
    cases.push_back({"agent: path rule, allow (openat)", Workload::kOpenat, Agent("allow-path"),
                     "floor: CONTINUE (openat)"});
    cases.push_back({"ptrace pass-through (openat)", Workload::kOpenat,
                     [](const ChildOptions& o) { return RunPtrace(o); },
                     "floor: CONTINUE (openat)"});
  }

  if (const std::string only = absl::GetFlag(FLAGS_only); !only.empty()) {
    std::vector<Case> kept;
    for (const Case& c : cases) {
      bool keep = c.name.find(only) != std::string::npos;
      for (const Case& d : cases) {
        if (d.floor == c.name && d.name.find(only) != std::string::npos) keep = true;
      }
      if (keep) kept.push_back(c);
    }
    cases = std::move(kept);
  }

  // Runs are interleaved (run 1 of every case, then run 2, ...) so that a
  // burst of load on this noisy machine hits every case alike.
  std::map<std::string, Result> results;
  for (int pinned = 1; pinned >= 0; --pinned) {
    PinSelf(pinned ? 0 : -1);
    // The plugin processes inherit this mode's affinity.
    PluginProc plugin_cache, plugin_nocache, floor_server;
    bool need_plugins = false;
    for (const Case& c : cases) need_plugins |= c.name.find("gRPC") != std::string::npos;
    if (need_plugins) {
      auto a = StartPlugin(plugin_bin, "cache", 60000);
      auto b = StartPlugin(plugin_bin, "nocache", 0);
      if (!a.ok() || !b.ok()) {
        fprintf(stderr, "plugin: %s\n", (!a.ok() ? a.status() : b.status()).ToString().c_str());
        return 1;
      }
      plugin_cache = *a;
      plugin_nocache = *b;
      g_plugin_sock_cache = plugin_cache.sock;
      g_plugin_sock_nocache = plugin_nocache.sock;
      auto f = StartFloorServer();
      if (!f.ok()) {
        fprintf(stderr, "gRPC floor: %s\n", f.status().ToString().c_str());
        StopPlugin(plugin_cache);
        StopPlugin(plugin_nocache);
        return 1;
      }
      floor_server = *f;
      g_floor_sock = floor_server.sock;
    }
    std::map<std::string, std::vector<double>> samples, cpu;
    for (int r = 0; r < runs; ++r) {
      for (const Case& c : cases) {
        ChildOptions o;
        o.workload = c.workload;
        o.iterations = (c.workload == Workload::kGetppid ? iters : iters / 2) / c.iter_div;
        o.cpu = pinned ? 0 : -1;
        auto ns = c.run(o);
        cpu[c.name].push_back(LastLoopCpuNs() / o.iterations);
        if (!ns.ok()) {
          fprintf(stderr, "%s: %s\n", c.name.c_str(), std::string(ns.status().message()).c_str());
          StopPlugin(plugin_cache);
          StopPlugin(plugin_nocache);
          StopPlugin(floor_server);
          return 1;
        }
        samples[c.name].push_back(*ns);
      }
    }
    StopPlugin(plugin_cache);
    StopPlugin(plugin_nocache);
    StopPlugin(floor_server);
    for (const Case& c : cases) {
      double m = Median(samples[c.name]);
      (pinned ? results[c.name].pinned : results[c.name].unpinned) = m;
      if (pinned) results[c.name].cpu_pinned = Median(cpu[c.name]);
      if (pinned)
        results[c.name].pinned_min =
            *std::min_element(samples[c.name].begin(), samples[c.name].end());
      fprintf(stderr, "  %-52s %s %9.0f ns\n", c.name.c_str(), pinned ? "pinned  " : "unpinned", m);
    }
  }
  PinSelf(-1);

  std::vector<ScalePoint> scale;
  std::string scale_flag = quick ? "" : absl::GetFlag(FLAGS_scale);
  for (absl::string_view s : absl::StrSplit(scale_flag, ',', absl::SkipEmpty())) {
    int n = std::stoi(std::string(s));
    int calls = std::max(50, absl::GetFlag(FLAGS_scale_calls) / n);
    absl::StatusOr<ScalePoint> p = MedianScalePoint(n, calls);
    if (!p.ok()) {
      fprintf(stderr, "scale %d: %s\n", n, p.status().ToString().c_str());
      return 1;
    }
    fprintf(stderr,
            "  scale %4d listeners: %8.0f calls/s (floor %8.0f) p50 %6.0f ns p99 %8.0f ns "
            "rss/container %.1f KiB "
            "heap/container %.1f KiB\n",
            n, p->calls_per_sec, p->floor_calls_per_sec, p->p50_ns, p->p99_ns,
            p->rss_kb_per_container, p->heap_kb_per_container);
    scale.push_back(*p);
  }

  absl::StatusOr<std::vector<std::string>> perf_lines = PerfRatioLines(results, scale, runs, iters);
  if (!perf_lines.ok()) {
    fprintf(stderr, "%s\n", perf_lines.status().ToString().c_str());
    return 1;
  }

  // ------------------------------------------------------------ report
  std::ostringstream md;
  md << "Machine: " << CpuModel() << ", " << std::thread::hardware_concurrency()
     << " CPUs, kernel ";
  {
    std::ifstream v("/proc/sys/kernel/osrelease");
    std::string rel;
    std::getline(v, rel);
    md << rel;
  }
  md << ". Median of " << runs << " runs, " << iters << " calls per run (openat: " << iters / 2
     << "; gRPC cache miss: " << iters / 10 << "). Pinned: the bench, its workload, the engine's "
     << "threads and the plugin process all on CPU 0; unpinned: no affinity.\n\n";
  md << "| case | workload | pinned ns/call | ratio | unpinned ns/call | ratio | pinned, best run "
        "| ratio | ratio to |\n";
  md << "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n";
  for (const Case& c : cases) {
    const Result& r = results[c.name];
    std::string rp = "", ru = "", rb = "";
    if (!c.floor.empty() && results[c.floor].pinned > 0 && results[c.floor].unpinned > 0) {
      rp = absl::StrFormat("%.2fx", r.pinned / results[c.floor].pinned);
      ru = absl::StrFormat("%.2fx", r.unpinned / results[c.floor].unpinned);
      rb = absl::StrFormat("%.2fx", r.pinned_min / results[c.floor].pinned_min);
    }
    md << absl::StrFormat("| %s | %s | %.0f | %s | %.0f | %s | %.0f | %s | %s |\n", c.name,
                          WorkloadName(c.workload), r.pinned, rp, r.unpinned, ru, r.pinned_min, rb,
                          c.floor);
  }
  if (!scale.empty()) {
    md << "\nScaling: N workload processes, each with its own filter and listener fd, all trapping "
          "getppid at once into one engine (default options); calls/s is all calls over the wall "
          "time "
          "from the first start to the last exit; latencies are per call, measured in the "
          "workloads; "
          "RSS per container = (agent VmRSS with N registered listeners - VmRSS of the started "
          "engine "
          "with none, after malloc_trim) / N, the larger of before and after the calls "
          "(page-granular: "
          "small N can show 0); heap per container = the same for malloc'd bytes (mallinfo2).\n";
    md << "Each point: median of 3 agent runs alternating with 3 runs of the floor (one thread, "
          "epoll over "
          "the same N listeners, RECV -> SEND CONTINUE, same SYNC_WAKE_UP setting).\n";
    md << "\n| listeners | agent calls/s | vs 10 | floor calls/s | floor vs 10 | agent/floor | p50 "
          "ns | p99 ns | "
          "agent RSS per container | agent heap per container |\n";
    md << "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    double base10 = 0, fbase10 = 0;
    for (auto& p : scale) {
      if (p.listeners == 10) {
        base10 = p.calls_per_sec;
        fbase10 = p.floor_calls_per_sec;
      }
    }
    for (auto& p : scale) {
      md << absl::StrFormat(
          "| %d | %.0f | %s | %.0f | %s | %.2fx | %.0f | %.0f | %.1f KiB | %.1f KiB |\n",
          p.listeners, p.calls_per_sec,
          base10 > 0 ? absl::StrFormat("%.0f%%", 100 * p.calls_per_sec / base10) : "",
          p.floor_calls_per_sec,
          fbase10 > 0 ? absl::StrFormat("%.0f%%", 100 * p.floor_calls_per_sec / fbase10) : "",
          p.floor_calls_per_sec > 0 ? p.floor_calls_per_sec / p.calls_per_sec : 0.0, p.p50_ns,
          p.p99_ns, p.rss_kb_per_container, p.heap_kb_per_container);
    }
  }
  // Targets (issue 6), from this run's pinned medians.
  {
    auto ratio = [&](const std::string& a, const std::string& b) -> double {
      if (results.count(a) == 0 || results.count(b) == 0 || results[b].pinned <= 0) return 0;
      return results[a].pinned / results[b].pinned;
    };
    auto best = [&](const std::string& a, const std::string& b) -> double {
      if (results.count(a) == 0 || results.count(b) == 0 || results[b].pinned_min <= 0) return 0;
      return results[a].pinned_min / results[b].pinned_min;
    };
    // One row: case `a` over case `b`, pinned median and best run.
    auto line = [&](const std::string& what, const std::string& a, const std::string& b,
                    double target, const std::string& extra) {
      const double v = ratio(a, b);
      if (v <= 0) return;
      md << absl::StrFormat("| %s | %.2fx | %.2fx | <= %.2fx | %s |\n", what, v, best(a, b), target,
                            v <= target ? "met" : absl::StrCat("missed", extra));
    };
    md << "\n| target | pinned medians | pinned best runs | target | status (medians) |\n"
          "| --- | ---: | ---: | ---: | --- |\n";
    line("in-process deny / minimal supervisor (spoofed return)", "agent: in-process rule, deny",
         "floor: minimal supervisor, spoofed return", 1.10,
         absl::StrFormat(" (%.2fx the epoll floor)",
                         ratio("agent: in-process rule, deny",
                               "floor: epoll + minimal supervisor, spoofed return")));
    line("in-process allow / minimal supervisor (CONTINUE)",
         "agent: in-process rule, allow (CONTINUE)", "floor: minimal supervisor, CONTINUE", 1.10,
         "");
    line("redirect_open emulation / open + ADDFD", "agent: redirect_open (emulation) (openat)",
         "floor: open + ADDFD(SEND) (openat)", 1.15, "");
    line("gRPC cache hit (unary) / in-process allow", kHitUnary, kInProcessAllow, 1.10, "");
    line("gRPC cache hit (stream) / in-process allow", kHitStream, kInProcessAllow, 1.10, "");
    line("gRPC cache miss (unary) / minimal gRPC client + server", kMissUnary, kGrpcFloorUnary,
         1.30, "");
    line("gRPC cache miss (stream) / minimal gRPC client + server", kMissStream, kGrpcFloorStream,
         1.30, "");
    double t10 = 0, t1000 = 0, f10 = 0, f1000 = 0, rss1000 = -1;
    for (auto& p : scale) {
      if (p.listeners == 10) t10 = p.calls_per_sec, f10 = p.floor_calls_per_sec;
      if (p.listeners == 1000)
        t1000 = p.calls_per_sec, f1000 = p.floor_calls_per_sec, rss1000 = p.rss_kb_per_container;
    }
    if (t10 > 0 && t1000 > 0) {
      md << absl::StrFormat(
          "| 1000 listeners keep >= 80%% of 10-listener throughput | %.0f%% | | >= 80%% | %s |\n",
          100 * t1000 / t10,
          t1000 >= 0.8 * t10
              ? "met"
              : absl::StrFormat("missed (the floor keeps %.0f%%)", 100 * f1000 / f10));
      md << absl::StrFormat("| agent RSS per container at 1000 | %.1f KiB | | <= 32 KiB | %s |\n",
                            rss1000, rss1000 <= 32 ? "met" : "missed");
    }
  }
  std::string table = md.str();
  printf("%s", table.c_str());
  std::ofstream(out_dir + "/bench.md") << table;

  if (absl::GetFlag(FLAGS_plot)) {
    std::ofstream dat(out_dir + "/cases.dat");
    int i = 0;
    for (const Case& c : cases) {
      dat << i++ << " \"" << c.name << "\" " << results[c.name].pinned << " "
          << results[c.name].unpinned << "\n";
    }
    dat.close();
    std::ofstream sdat(out_dir + "/scale.dat");
    for (auto& p : scale) {
      sdat << p.listeners << " " << p.calls_per_sec << " " << p.p99_ns << " "
           << p.floor_calls_per_sec << " " << p.p50_ns << "\n";
    }
    sdat.close();
    std::ofstream gp(out_dir + "/plot.gp");
    gp << "set terminal png size 1400,760 font ',10' noenhanced\n"
       << "set output '" << out_dir << "/cases.png'\n"
       << "set title 'ns per trapped syscall (median of " << runs << " runs)'\n"
       << "set style data histograms\nset style histogram cluster gap 1\nset style fill solid 0.8\n"
       << "set xtics rotate by -35\nset ylabel 'ns per call (log scale)'\nset logscale y\n"
       << "set key top left\nset bmargin 17\nset rmargin 12\n"
       << "plot '" << out_dir
       << "/cases.dat' using 3:xtic(2) title 'pinned', '' using 4 title 'unpinned'\n";
    if (!scale.empty()) {
      gp << "set output '" << out_dir << "/scale.png'\n"
         << "set title 'agent throughput vs listeners (each its own process)'\n"
         << "unset logscale y\nset logscale x\nset xlabel 'listeners (one process each)'\n"
         << "set ylabel 'trapped calls per second'\n"
         << "set style data linespoints\nunset xtics\nset xtics\nset bmargin 4\n"
         << "set yrange [0:*]\n"
         << "plot '" << out_dir
         << "/scale.dat' using 1:2 title 'agent calls/s' lw 2, '' using 1:4 title "
         << "'floor (minimal epoll supervisor) calls/s' lw 2 dt 2\n";
    }
    gp.close();
    if (std::system(absl::StrCat("gnuplot '", out_dir, "/plot.gp' 2>/dev/null").c_str()) != 0) {
      fprintf(stderr, "gnuplot failed; the data is in %s\n", out_dir.c_str());
    }
  }
  {
    std::ofstream md_out(out_dir + "/bench.md", std::ios::app);
    md_out << "\n```\n";
    for (const std::string& l : *perf_lines) {
      printf("%s\n", l.c_str());
      md_out << l << "\n";
    }
    md_out << "```\n";
  }
  if (results.count("agent: in-process rule, deny") == 0) return 0;  // --only
  double ratio = results["agent: in-process rule, deny"].pinned /
                 results["floor: minimal supervisor, spoofed return"].pinned;
  printf("agent/epoll-floor ratio: %.2f\n",
         results["agent: in-process rule, deny"].pinned /
             results["floor: epoll + minimal supervisor, spoofed return"].pinned);
  printf("agent/floor ratio: %.2f\n", ratio);
  return 0;
}

}  // namespace
}  // namespace seccomp_agent::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (const std::string addr = absl::GetFlag(FLAGS_grpc_floor_server); !addr.empty()) {
    return seccomp_agent::bench::ServeGrpcFloor(addr, seccomp_agent::bench::FloorAnswer());
  }
  return seccomp_agent::bench::Main();
}
