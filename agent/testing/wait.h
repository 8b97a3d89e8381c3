// Tests wait on conditions, never on time: WaitFor polls a predicate until
// it holds or a generous deadline passes (the machine running the tests may
// be loaded; the deadline only bounds a failing test).
#ifndef SECCOMP_AGENT_TESTING_WAIT_H_
#define SECCOMP_AGENT_TESTING_WAIT_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace seccomp_agent::testing {

inline constexpr absl::Duration kWaitTimeout = absl::Seconds(30);

// True as soon as `cond()` is; false if it still is not after `timeout`.
template <typename F>
bool WaitFor(F&& cond, absl::Duration timeout = kWaitTimeout,
             absl::Duration poll = absl::Milliseconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (cond()) return true;
    absl::SleepFor(poll);
  }
  return cond();
}

}  // namespace seccomp_agent::testing

#endif  // SECCOMP_AGENT_TESTING_WAIT_H_
