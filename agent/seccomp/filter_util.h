// Small pieces shared by the programs that install their own filter and
// pass a listener on (test fixtures, the benchmark workloads).
#ifndef SECCOMP_AGENT_SECCOMP_FILTER_UTIL_H_
#define SECCOMP_AGENT_SECCOMP_FILTER_UTIL_H_

#include <linux/filter.h>
#include <seccomp.h>

#include <vector>

#include "absl/status/statusor.h"

namespace seccomp_agent {

// The BPF program of `ctx`, exported through a memfd, so a child can load
// it after fork with raw syscalls only (libseccomp allocates). Takes
// ownership of `ctx` and releases it.
absl::StatusOr<std::vector<sock_filter>> ExportBpf(scmp_filter_ctx ctx);

// Sends one fd with one data byte (SCM_RIGHTS). Raw syscalls only: safe in
// a child after fork. Returns false on failure.
bool SendOneFd(int sock, int fd);
// Receives what SendOneFd sent (MSG_CMSG_CLOEXEC); -1 on failure.
int RecvOneFd(int sock);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_SECCOMP_FILTER_UTIL_H_
