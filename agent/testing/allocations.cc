#include "agent/testing/allocations.h"

#include <cstdlib>
#include <new>

namespace {
thread_local bool g_counting = false;
thread_local int g_allocations = 0;
}  // namespace

void* operator new(std::size_t n) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace seccomp_agent::testing {

CountAllocations::CountAllocations() {
  g_allocations = 0;
  g_counting = true;
}

CountAllocations::~CountAllocations() { g_counting = false; }

int CountAllocations::count() const { return g_allocations; }

}  // namespace seccomp_agent::testing
