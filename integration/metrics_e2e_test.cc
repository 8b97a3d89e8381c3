// The real agent's metrics endpoint under an idle-connection flood (issue
// 12): with cpp-httplib, 3000 idle connections from a local user raised the
// agent's fds from 31 to ~3000 and made /metrics and /healthz time out. Now
// the agent's fds stay within --metrics_max_connections of where they were,
// and /healthz and /metrics answer while the flood is still held open.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/common/fd.h"
#include "gtest/gtest.h"
#include "integration/harness/agent_process.h"

namespace seccomp_agent::integration {
namespace {

int CountFds(pid_t pid) {
  int n = 0;
  DIR* d = opendir(absl::StrCat("/proc/", pid, "/fd").c_str());
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

UniqueFd Connect(int port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return UniqueFd();
  timeval tv{20, 0};  // generous: an answer takes milliseconds
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// The whole response to GET `path`, or "" if none came.
std::string Get(int port, const std::string& path) {
  UniqueFd fd = Connect(port);
  if (!fd) return "";
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  if (send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) < 0) return "";
  std::string out;
  char buf[8192];
  for (ssize_t n; (n = recv(fd.get(), buf, sizeof(buf), 0)) > 0;) out.append(buf, n);
  return out;
}

// Starts the agent with the metrics endpoint on a free port; returns the port.
int StartAgent(std::unique_ptr<Agent>* agent, std::vector<std::string> flags) {
  AgentOptions o;
  o.extra_flags = std::move(flags);
  o.extra_flags.push_back("--metrics_address=127.0.0.1:0");
  auto a = Agent::Start(o);
  EXPECT_TRUE(a.ok()) << a.status();
  if (!a.ok()) return -1;
  *agent = std::move(*a);
  auto line = (*agent)->WaitForLog("metrics on http://", absl::Seconds(15));
  EXPECT_TRUE(line.has_value()) << (*agent)->Stderr();
  if (!line) return -1;
  size_t at = line->find("(port ");
  int port = -1;
  if (at == std::string::npos ||
      !absl::SimpleAtoi(line->substr(at + 6, line->find(',', at) - at - 6), &port)) {
    ADD_FAILURE() << "no port in: " << *line;
  }
  return port;
}

TEST(MetricsE2eTest, ThreeThousandIdleConnectionsNeitherGrowFdsNorBlockHealthz) {
  const int kIdle = 3000;
  rlimit rl;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  ASSERT_GE(rl.rlim_max, static_cast<rlim_t>(kIdle + 200)) << "RLIMIT_NOFILE too low";
  rl.rlim_cur = std::max<rlim_t>(rl.rlim_cur, kIdle + 200);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  std::unique_ptr<Agent> agent;
  const int port = StartAgent(&agent, {});  // the defaults: 64 connections, 5 s
  ASSERT_GT(port, 0);
  ASSERT_EQ(Get(port, "/healthz").rfind("HTTP/1.1 200", 0), 0u);
  const int baseline = CountFds(agent->pid());
  ASSERT_GT(baseline, 0);
  std::vector<UniqueFd> idle;
  int most = baseline;
  for (int i = 0; i < kIdle; ++i) {
    idle.push_back(Connect(port));
    ASSERT_TRUE(idle.back()) << "connect " << i << ": " << strerror(errno);
    if (i % 100 == 99) most = std::max(most, CountFds(agent->pid()));
  }
  // Held open: /healthz and /metrics still answer.
  const std::string health = Get(port, "/healthz");
  EXPECT_EQ(health.rfind("HTTP/1.1 200 OK", 0), 0u) << "'" << health << "'";
  const std::string metrics = Get(port, "/metrics");
  EXPECT_EQ(metrics.rfind("HTTP/1.1 200 OK", 0), 0u) << metrics.substr(0, 200);
  EXPECT_NE(metrics.find("seccomp_agent_active_containers"), std::string::npos);
  most = std::max(most, CountFds(agent->pid()));
  // 64 connections, plus a few for whatever else the agent opened meanwhile.
  EXPECT_LE(most, baseline + 64 + 8) << "baseline " << baseline;
  RecordProperty("agent_fds_baseline", baseline);
  RecordProperty("agent_fds_most", most);
  idle.clear();
  ExitInfo end = agent->Stop();
  EXPECT_EQ(end.exit_code, 0) << end.ToString() << "\n" << agent->Stderr();
}

TEST(MetricsE2eTest, AnIdleConnectionIsClosedAfterMetricsTimeout) {
  std::unique_ptr<Agent> agent;
  const int port = StartAgent(&agent, {"--metrics_timeout=1s"});
  ASSERT_GT(port, 0);
  UniqueFd idle = Connect(port);
  ASSERT_TRUE(idle);
  char c;
  EXPECT_EQ(recv(idle.get(), &c, 1, 0), 0) << "the agent did not close an idle connection";
}

TEST(MetricsE2eTest, BadLimitsAreRefused) {
  AgentOptions o;
  o.extra_flags = {"--metrics_address=127.0.0.1:0", "--metrics_max_connections=0"};
  o.ready_timeout = absl::Seconds(5);
  EXPECT_FALSE(Agent::Start(o).ok());
}

}  // namespace
}  // namespace seccomp_agent::integration
