// seccomp_bench: the cost of a decision, side by side, in ONE run.
//
// Every figure is the median of --runs runs and is printed as a ratio to a
// floor measured in the same run (these machines are noisy; absolute times
// mean little across runs). Floors: no seccomp; an ALLOW filter; a minimal
// supervisor (blocking NOTIF_RECV -> NOTIF_SEND) for CONTINUE and for a
// spoofed return; open + ADDFD(SEND) for openat. Then the agent's engine
// in-process with a local rule, a redirect_open carried out by the
// injector's emulation backend (ratio to open + ADDFD), a rule compiled
// into the filter itself (ratio to the ALLOW filter), ptrace pass-through,
// and a scaling run.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
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
#include "agent/bench/workload.h"
#include "agent/common/log.h"
#include "agent/common/status.h"
#include "agent/engine/action_router.h"
#include "agent/engine/engine.h"
#include "agent/injector/injector.h"
#include "agent/policy/policy.h"
#include "agent/seccomp/task_memory.h"
#include "agent/seccomp/unotify.h"

ABSL_FLAG(bool, quick, false, "Short run (< 2 min): core cases only, fewer iterations.");
ABSL_FLAG(int, runs, 5, "Runs per case; the median is reported.");
ABSL_FLAG(int, iterations, 20000, "Trapped syscalls per run (getppid; openat uses half).");
ABSL_FLAG(std::string, out_dir, "out/bench", "Where the table (bench.md), data and plot go.");
ABSL_FLAG(bool, plot, true, "Render PNG plots with gnuplot.");
ABSL_FLAG(std::string, scale, "1,10,100,1000", "Listener counts for the scaling run (empty: skip).");
ABSL_FLAG(bool, sync_wakeup, true, "Engine: request SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP.");
ABSL_FLAG(std::string, only, "",
          "Run only the cases whose name contains this (and their floors), e.g. for perf.");
ABSL_FLAG(int, workers, 4, "Engine worker threads (as the agent's --workers).");

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

std::shared_ptr<const CompiledPolicy> AgentPolicy() {
  auto p = CompiledPolicy::LoadString(kAgentPolicy, "bench.yaml");
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
      SupervisorThread sup([l, kind](std::atomic<bool>& stop) { MinimalSupervisor(l, kind, stop); });
      StartChild(c);
      r = FinishChild(c);
    }
    return r;
  };
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
    injector::Injector inj(injector::OptionsFromProto(policy->proto().injection()),
                           DefaultUnotify());
    ActionRouter router(DefaultUnotify(), &inj, /*plugins=*/nullptr);
    Engine engine(eo, DefaultUnotify(), policy, nullptr);
    engine.SetActionHandler(&router);
    SA_RETURN_IF_ERROR(engine.Start());
    ContainerInfo info;
    info.id = container_id;
    info.init_pid = c.pid;
    SA_RETURN_IF_ERROR(engine.AddContainer(info, std::move(c.listener)));
    StartChild(c);
    return FinishChild(c);
  };
}

struct Case {
  std::string name;
  Workload workload;
  RunFn run;
  std::string floor;  // name of the case this one is a ratio to ("" = none)
};

struct Result {
  double pinned = 0, unpinned = 0;
};

// ----------------------------------------------------------------- scaling

struct ScalePoint {
  int listeners;
  double calls_per_sec;
  double p50_ns, p99_ns;
  double rss_kb_per_container;
};

absl::StatusOr<ScalePoint> RunScale(int n, int calls_each) {
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
  EngineOptions eo;
  Engine engine(eo, DefaultUnotify(), AgentPolicy(), nullptr);
  SA_RETURN_IF_ERROR(engine.Start());
  long rss0 = RssKb();
  for (int i = 0; i < n; ++i) {
    ContainerInfo info;
    info.id = absl::StrCat("scale-", i);
    info.init_pid = children[i].pid;
    info.annotations["io.kubernetes.pod.name"] = absl::StrCat("pod-", i);
    SA_RETURN_IF_ERROR(engine.AddContainer(info, std::move(children[i].listener)));
  }
  long rss1 = RssKb();
  auto t0 = std::chrono::steady_clock::now();
  for (auto& c : children) StartChild(c);
  for (auto& c : children) {
    auto r = FinishChild(c);
    if (!r.ok()) return r.status();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<double> all(lat, lat + slots);
  munmap(lat, slots * sizeof(int64_t));
  std::sort(all.begin(), all.end());
  ScalePoint p;
  p.listeners = n;
  p.calls_per_sec = slots / secs;
  p.p50_ns = all[all.size() / 2];
  p.p99_ns = all[static_cast<size_t>(all.size() * 0.99)];
  p.rss_kb_per_container = static_cast<double>(rss1 - rss0) / n;
  return p;
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
  const int iters = quick ? 4000 : absl::GetFlag(FLAGS_iterations);
  const std::string out_dir = absl::GetFlag(FLAGS_out_dir);
  std::system(absl::StrCat("mkdir -p '", out_dir, "'").c_str());

  std::vector<Case> cases = {
      {"no seccomp", Workload::kGetppid, Plain(Filter::kNone), ""},
      {"ALLOW filter", Workload::kGetppid, Plain(Filter::kAllow), "no seccomp"},
      {"compiled rule (deny in the filter)", Workload::kGetppid, Plain(Filter::kDeny),
       "ALLOW filter"},
      {"floor: minimal supervisor, CONTINUE", Workload::kGetppid, Floor(FloorKind::kContinue), ""},
      {"floor: minimal supervisor, spoofed return", Workload::kGetppid, Floor(FloorKind::kSpoof), ""},
      {"floor: epoll + minimal supervisor, spoofed return", Workload::kGetppid,
       Floor(FloorKind::kEpollSpoof), "floor: minimal supervisor, spoofed return"},
      {"agent: in-process rule, deny", Workload::kGetppid, Agent("deny"),
       "floor: minimal supervisor, spoofed return"},
      {"agent: in-process rule, spoof", Workload::kGetppid, Agent("spoof"),
       "floor: minimal supervisor, spoofed return"},
      {"agent: in-process rule, allow (CONTINUE)", Workload::kGetppid, Agent("allow"),
       "floor: minimal supervisor, CONTINUE"},
      {"floor: open + ADDFD(SEND) (openat)", Workload::kOpenat, Floor(FloorKind::kAddfd), ""},
      {"agent: redirect_open (emulation) (openat)", Workload::kOpenat, Agent("redirect"),
       "floor: open + ADDFD(SEND) (openat)"},
  };
  if (!quick) {
    cases.push_back({"ptrace PTRACE_SYSCALL pass-through", Workload::kGetppid,
                     [](const ChildOptions& o) { return RunPtrace(o); }, "floor: minimal supervisor, CONTINUE"});
    cases.push_back({"no seccomp (openat)", Workload::kOpenat, Plain(Filter::kNone), ""});
    cases.push_back({"floor: CONTINUE (openat)", Workload::kOpenat, Floor(FloorKind::kContinue), ""});
    cases.push_back({"agent: path rule, allow (openat)", Workload::kOpenat, Agent("allow-path"),
                     "floor: CONTINUE (openat)"});
    cases.push_back({"ptrace pass-through (openat)", Workload::kOpenat,
                     [](const ChildOptions& o) { return RunPtrace(o); }, "floor: CONTINUE (openat)"});
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
    std::map<std::string, std::vector<double>> samples;
    for (int r = 0; r < runs; ++r) {
      for (const Case& c : cases) {
        ChildOptions o;
        o.workload = c.workload;
        o.iterations = c.workload == Workload::kGetppid ? iters : iters / 2;
        o.cpu = pinned ? 0 : -1;
        auto ns = c.run(o);
        if (!ns.ok()) {
          fprintf(stderr, "%s: %s\n", c.name.c_str(), std::string(ns.status().message()).c_str());
          return 1;
        }
        samples[c.name].push_back(*ns);
      }
    }
    for (const Case& c : cases) {
      double m = Median(samples[c.name]);
      (pinned ? results[c.name].pinned : results[c.name].unpinned) = m;
      fprintf(stderr, "  %-52s %s %9.0f ns\n", c.name.c_str(), pinned ? "pinned  " : "unpinned", m);
    }
  }
  PinSelf(-1);

  std::vector<ScalePoint> scale;
  std::string scale_flag = quick ? "" : absl::GetFlag(FLAGS_scale);
  for (absl::string_view s : absl::StrSplit(scale_flag, ',', absl::SkipEmpty())) {
    int n = std::stoi(std::string(s));
    int calls = std::max(50, 20000 / n);
    auto p = RunScale(n, calls);
    if (!p.ok()) {
      fprintf(stderr, "scale %d: %s\n", n, std::string(p.status().message()).c_str());
      return 1;
    }
    fprintf(stderr, "  scale %4d listeners: %8.0f calls/s p50 %6.0f ns p99 %8.0f ns rss/container %.1f KiB\n",
            n, p->calls_per_sec, p->p50_ns, p->p99_ns, p->rss_kb_per_container);
    scale.push_back(*p);
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
     << ").\n\n";
  md << "| case | workload | pinned ns/call | ratio | unpinned ns/call | ratio | ratio to |\n";
  md << "| --- | --- | ---: | ---: | ---: | ---: | --- |\n";
  for (const Case& c : cases) {
    const Result& r = results[c.name];
    std::string rp = "", ru = "";
    if (!c.floor.empty() && results[c.floor].pinned > 0 && results[c.floor].unpinned > 0) {
      rp = absl::StrFormat("%.2fx", r.pinned / results[c.floor].pinned);
      ru = absl::StrFormat("%.2fx", r.unpinned / results[c.floor].unpinned);
    }
    md << absl::StrFormat("| %s | %s | %.0f | %s | %.0f | %s | %s |\n", c.name, WorkloadName(c.workload),
                          r.pinned, rp, r.unpinned, ru, c.floor);
  }
  if (!scale.empty()) {
    md << "\n| listeners | calls/s | vs 10 | p50 ns | p99 ns | agent RSS per container |\n";
    md << "| ---: | ---: | ---: | ---: | ---: | ---: |\n";
    double base10 = 0;
    for (auto& p : scale) if (p.listeners == 10) base10 = p.calls_per_sec;
    for (auto& p : scale) {
      md << absl::StrFormat("| %d | %.0f | %s | %.0f | %.0f | %.1f KiB |\n", p.listeners, p.calls_per_sec,
                            base10 > 0 ? absl::StrFormat("%.0f%%", 100 * p.calls_per_sec / base10) : "",
                            p.p50_ns, p.p99_ns, p.rss_kb_per_container);
    }
  }
  std::string table = md.str();
  printf("%s", table.c_str());
  std::ofstream(out_dir + "/bench.md") << table;

  if (absl::GetFlag(FLAGS_plot)) {
    std::ofstream dat(out_dir + "/cases.dat");
    int i = 0;
    for (const Case& c : cases) {
      dat << i++ << " \"" << c.name << "\" " << results[c.name].pinned << " " << results[c.name].unpinned << "\n";
    }
    dat.close();
    std::ofstream sdat(out_dir + "/scale.dat");
    for (auto& p : scale) sdat << p.listeners << " " << p.calls_per_sec << " " << p.p99_ns << "\n";
    sdat.close();
    std::ofstream gp(out_dir + "/plot.gp");
    gp << "set terminal png size 1100,600 font ',10'\n"
       << "set output '" << out_dir << "/cases.png'\n"
       << "set title 'ns per trapped syscall (median of " << runs << " runs)'\n"
       << "set style data histograms\nset style histogram cluster gap 1\nset style fill solid 0.8\n"
       << "set xtics rotate by -35\nset ylabel 'ns per call'\nset key top left\nset bmargin 12\n"
       << "plot '" << out_dir << "/cases.dat' using 3:xtic(2) title 'pinned', '' using 4 title 'unpinned'\n";
    if (!scale.empty()) {
      gp << "set output '" << out_dir << "/scale.png'\n"
         << "set title 'agent throughput vs listeners (each its own process)'\n"
         << "set logscale x\nset xlabel 'listeners'\nset ylabel 'trapped calls per second'\n"
         << "set style data linespoints\nunset xtics\nset xtics\nset bmargin 4\n"
         << "plot '" << out_dir << "/scale.dat' using 1:2 title 'calls/s' lw 2\n";
    }
    gp.close();
    if (std::system(absl::StrCat("gnuplot '", out_dir, "/plot.gp' 2>/dev/null").c_str()) != 0) {
      fprintf(stderr, "gnuplot failed; the data is in %s\n", out_dir.c_str());
    }
  }
  if (results.count("agent: in-process rule, deny") == 0) return 0;  // --only
  double ratio = results["agent: in-process rule, deny"].pinned /
                 results["floor: minimal supervisor, spoofed return"].pinned;
  printf("agent/epoll-floor ratio: %.2f\n", results["agent: in-process rule, deny"].pinned /
                                                results["floor: epoll + minimal supervisor, spoofed return"].pinned);
  printf("agent/floor ratio: %.2f\n", ratio);
  return 0;
}

}  // namespace
}  // namespace seccomp_agent::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return seccomp_agent::bench::Main();
}
