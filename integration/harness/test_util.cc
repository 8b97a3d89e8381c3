#include "integration/harness/test_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace seccomp_agent::integration {

std::string Runfile(const std::string& rel) {
  const char* srcdir = getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/seccomp_agent/", rel);
}

bool WaitForSocket(const std::string& path, absl::Duration timeout) {
  struct stat st;
  return WaitUntil([&] { return stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode); }, timeout,
                   absl::Milliseconds(20));
}

bool WaitUntil(const std::function<bool()>& cond, absl::Duration timeout, absl::Duration poll) {
  const absl::Time end = absl::Now() + timeout;
  while (!cond()) {
    if (absl::Now() >= end) return false;
    absl::SleepFor(poll);
  }
  return true;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

long Field(const std::string& out, const std::string& name) {
  std::smatch m;
  const std::regex re("\\b" + name + "=(-?[0-9]+)");
  if (!std::regex_search(out, m, re)) return -1;
  long v = -1;
  (void)absl::SimpleAtoi(m[1].str(), &v);
  return v;
}

}  // namespace seccomp_agent::integration
