// Process-wide logging (spdlog): one line per event, to stderr.
#ifndef SECCOMP_AGENT_COMMON_LOG_H_
#define SECCOMP_AGENT_COMMON_LOG_H_

#include "spdlog/spdlog.h"

namespace seccomp_agent {

// Sets the pattern and level ("trace".."off"). Safe to call more than once.
void InitLogging(const std::string& level);

}  // namespace seccomp_agent

#endif  // SECCOMP_AGENT_COMMON_LOG_H_
