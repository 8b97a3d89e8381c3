// Counting heap allocations in a test: linking this library replaces the
// global operator new/delete of the test binary with malloc/free ones that
// count what the calling thread allocates while a CountAllocations lives.
// For hot paths that must allocate nothing (a plugin cache hit).
#ifndef SECCOMP_AGENT_TESTING_ALLOCATIONS_H_
#define SECCOMP_AGENT_TESTING_ALLOCATIONS_H_

namespace seccomp_agent::testing {

class CountAllocations {
 public:
  CountAllocations();
  ~CountAllocations();
  CountAllocations(const CountAllocations&) = delete;
  CountAllocations& operator=(const CountAllocations&) = delete;
  // This thread's allocations since construction.
  int count() const;
};

}  // namespace seccomp_agent::testing

#endif  // SECCOMP_AGENT_TESTING_ALLOCATIONS_H_
