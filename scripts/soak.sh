#!/usr/bin/env bash
# On-demand soak (issue 7): `scripts/soak.sh [MINUTES]` (default 10) drives
# sustained notifications from real listeners through the agent binary
# (integration:soak_test with SOAK_SECONDS=MINUTES*60) and samples its VmRSS
# after warm-up and at the end. Passes when the drift is < 5% and threads
# and fds are back; prints the numbers. Needs root. CI runs the same test
# for 40 s as part of `bazel test //...`. Arguments after MINUTES go to
# `bazel test` (e.g. `-c opt`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/as-root.sh "$@"
MINUTES=${1:-10}
if ! [[ $MINUTES =~ ^[0-9]+$ ]] || [[ $MINUTES -lt 1 ]]; then
  echo "usage: scripts/soak.sh [MINUTES]" >&2
  exit 2
fi
shift || true
SECONDS_TOTAL=$((MINUTES * 60))
BAZEL=(bazel)
[[ -n "${SECCOMP_AGENT_BAZEL_ROOT:-}" ]] && BAZEL=(bazel "--output_user_root=$SECCOMP_AGENT_BAZEL_ROOT")
echo "== soak: ${MINUTES} min of sustained notifications through the agent"
set +e
"${BAZEL[@]}" test //integration:soak_test --cache_test_results=no \
  --test_env=SOAK_SECONDS="$SECONDS_TOTAL" --test_timeout=$((SECONDS_TOTAL + 300)) \
  --test_output=all "$@" 2>&1 | grep -E '^(soak:|\[ +(OK|FAILED) +\]|//integration|.*Failure|Expected|  )'
status=${PIPESTATUS[0]}
set -e
if [[ $status -eq 0 ]]; then echo "soak: PASSED"; else echo "soak: FAILED"; fi
exit "$status"
