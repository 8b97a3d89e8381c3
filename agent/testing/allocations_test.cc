#include "agent/testing/allocations.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace seccomp_agent::testing {
namespace {

// The counter counts (a zero from a counter that never counts would pass
// every allocation-free test).
TEST(CountAllocations, CountsThisThreadsAllocationsWhileAlive) {
  int n = -1;
  {
    CountAllocations counted;
    auto a = std::make_unique<int>(1);
    std::string b(100, 'x');
    n = counted.count();
  }
  EXPECT_EQ(n, 2);
  auto after = std::make_unique<int>(2);  // not counted: no counter alive
  CountAllocations again;
  EXPECT_EQ(again.count(), 0);
}

}  // namespace
}  // namespace seccomp_agent::testing
