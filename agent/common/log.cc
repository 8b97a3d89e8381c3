#include "agent/common/log.h"

#include "spdlog/sinks/stdout_sinks.h"

namespace seccomp_agent {

void InitLogging(const std::string& level) {
  static auto logger = [] {
    auto l = spdlog::stderr_logger_mt("seccomp-agent");
    spdlog::set_default_logger(l);
    return l;
  }();
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
}

}  // namespace seccomp_agent
