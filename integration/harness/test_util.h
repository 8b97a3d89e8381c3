// Small helpers the end-to-end tests share: runfiles, waiting for a socket,
// reading a file whole, and `name=123` fields of a workload's output.
#ifndef SECCOMP_AGENT_INTEGRATION_HARNESS_TEST_UTIL_H_
#define SECCOMP_AGENT_INTEGRATION_HARNESS_TEST_UTIL_H_

#include <functional>
#include <string>

#include "absl/time/time.h"

namespace seccomp_agent::integration {

// `rel` (a workspace-relative path) in the test's runfiles
// ($TEST_SRCDIR/seccomp_agent/rel; "./seccomp_agent/rel" outside Bazel).
std::string Runfile(const std::string& rel);

// Polls until `path` is a unix socket; false after `timeout`.
bool WaitForSocket(const std::string& path, absl::Duration timeout);

// Polls `cond` every `poll` until it holds (true) or `timeout` passed (false).
bool WaitUntil(const std::function<bool()>& cond, absl::Duration timeout,
               absl::Duration poll = absl::Milliseconds(100));

// The whole file, or "" when it cannot be read.
std::string ReadAll(const std::string& path);

// The number in the first `name=<integer>` of `out` (at a word boundary),
// or -1 when there is none.
long Field(const std::string& out, const std::string& name);

}  // namespace seccomp_agent::integration

#endif  // SECCOMP_AGENT_INTEGRATION_HARNESS_TEST_UTIL_H_
