// Small helpers shared by the plugin tests and the benchmark.
#ifndef SECCOMP_AGENT_PLUGIN_TESTING_TEST_UTIL_H_
#define SECCOMP_AGENT_PLUGIN_TESTING_TEST_UTIL_H_

#include <linux/audit.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/plugin/decision.h"
#include "agent/plugin/dispatcher.h"
#include "agent/model/event.h"

namespace seccomp_agent::plugin::testing {

// A fresh unix socket address in /tmp (TEST_TMPDIR can exceed sun_path).
// The pid alone is not unique: every sandboxed test runs as the same pid in
// its own namespace, with /tmp shared.
inline std::string SocketPath(const std::string& tag) {
  static const uint32_t salt = std::random_device{}();
  static std::atomic<int> n{0};
  return absl::StrCat("/tmp/sa_plugin_", tag, "_", getpid(), "_", absl::Hex(salt), "_",
                      n.fetch_add(1), ".sock");
}

inline ContainerInfo Container(const std::string& id,
                               std::map<std::string, std::string> annotations = {}) {
  ContainerInfo c;
  c.id = id;
  c.init_pid = 1234;
  c.annotations = std::move(annotations);
  c.runtime = "runc";
  return c;
}

inline SyscallEvent OpenatEvent(const ContainerInfo* c, const std::string& path) {
  SyscallEvent ev;
  ev.container = c;
  ev.id = 42;
  ev.pid = 4321;
  ev.arch = NativeAuditArch();
  ev.nr = SYS_openat;
  ev.syscall = "openat";
  ev.args[0] = static_cast<uint64_t>(-100);  // AT_FDCWD
  ev.args[1] = 0x7ffd0000;                   // pointer in the task
  ev.args[2] = 0;                            // O_RDONLY
  ev.path = path;
  ev.dirfd = -100;
  return ev;
}

inline SyscallEvent WriteEvent(const ContainerInfo* c, int fd, const std::string& bytes) {
  SyscallEvent ev;
  ev.container = c;
  ev.pid = 4321;
  ev.arch = NativeAuditArch();
  ev.nr = SYS_write;
  ev.syscall = "write";
  ev.args[0] = static_cast<uint64_t>(fd);
  ev.args[1] = 0x7ffd1000;
  ev.args[2] = bytes.size();
  ev.fd = fd;
  ev.write_bytes = bytes;
  ev.write_count = bytes.size();
  return ev;
}

inline SyscallEvent BindEvent(const ContainerInfo* c, int fd, const std::string& addr,
                              uint16_t port) {
  SyscallEvent ev;
  ev.container = c;
  ev.pid = 4321;
  ev.arch = NativeAuditArch();
  ev.nr = SYS_bind;
  ev.syscall = "bind";
  ev.args[0] = static_cast<uint64_t>(fd);
  ev.args[1] = 0x7ffd2000;
  ev.args[2] = 16;
  ev.fd = fd;
  Sockaddr sa;
  sa.family = 2;  // AF_INET
  sa.address = addr;
  sa.port = port;
  sa.raw.assign(16, 0);
  ev.sockaddr = sa;
  return ev;
}

struct Timed {
  PluginResult result;
  std::chrono::steady_clock::duration elapsed;  // Decide() to done
  double ms() const { return std::chrono::duration<double, std::milli>(elapsed).count(); }
};

// Decide and wait for `done` (which must come: the test hangs otherwise,
// and Bazel's timeout reports it).
inline Timed DecideSync(PluginDispatcher& d, const std::string& name, const SyscallEvent& ev) {
  auto p = std::make_shared<std::promise<Timed>>();
  auto f = p->get_future();
  const auto start = std::chrono::steady_clock::now();
  d.Decide(name, ev, [p, start](PluginResult r) {
    const auto end = std::chrono::steady_clock::now();
    p->set_value(Timed{std::move(r), end - start});
  });
  return f.get();
}

}  // namespace seccomp_agent::plugin::testing

#endif  // SECCOMP_AGENT_PLUGIN_TESTING_TEST_UTIL_H_
