// Findings of agent/fuzz/policy_fuzzer, as plain tests (gcc, no libFuzzer):
// each input must be refused promptly with an error, not hang or crash.
//
// FINDING 1 (fixed in commit 8b2e5f8; agent/policy/loader.cc, ParsePolicyText,
// the call `YAML::LoadAll(std::string(text))`): a stray top-level ',' -- the whole
// text ",", or "{version: 1}," -- makes yaml-cpp 0.7.0's (Debian's)
// Parser::HandleNextDocument report a new empty document forever without
// consuming the token, so YAML::LoadAll loops, allocating a node per turn:
// the agent (or the OCI hook) hangs with growing memory at policy load
// instead of reporting a syntax error. Reproduced with yaml-cpp alone.
//
// Each case runs in a child with a deadline (and a memory cap), so a hang is
// a failure after kDeadlineSeconds rather than a stuck test.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "agent/policy/loader.h"
#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

constexpr int kDeadlineSeconds = 3;

// "ok" when ParsePolicyText returned an error in time; else what happened.
std::string RefusedInTime(const std::string& text) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(kDeadlineSeconds);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    // The loop allocates ~150 MB/s. (Not under ASan/TSan: their shadow
    // memory is already far beyond any address-space cap.)
    struct rlimit as = {size_t{2} << 30, size_t{2} << 30};  // 2 GiB
    setrlimit(RLIMIT_AS, &as);
#endif
    auto p = ParsePolicyText(text, "regression.yaml");
    _exit(p.ok() ? 1 : 0);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return "fork/wait failed";
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return "ok";
  if (WIFEXITED(st)) return "accepted (no error)";
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
    return "hung: no answer within " + std::to_string(kDeadlineSeconds) + " s";
  }
  return "killed by signal " + std::to_string(WTERMSIG(st));
}

TEST(PolicyLoaderRegression, StrayTopLevelCommaIsRefusedNotLooping) {
  EXPECT_EQ(RefusedInTime(","), "ok");
}

TEST(PolicyLoaderRegression, CommaAfterFlowMappingIsRefusedNotLooping) {
  EXPECT_EQ(RefusedInTime("{version: 1, default_action: {allow: {}}},"), "ok");
}

TEST(PolicyLoaderRegression, CommaAfterSecondDocumentIsRefusedNotLooping) {
  EXPECT_EQ(RefusedInTime("version: 1\n---\n,"), "ok");
}

}  // namespace
}  // namespace seccomp_agent
