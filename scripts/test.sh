#!/usr/bin/env bash
# README command 2: installs what is needed, then runs every test: unit and
# integration tests (real runc and crun containers) under Bazel, the kernel
# selftests, the injector conformance suite and real runc/crun containers
# (integration/vm_runtime) in the patched kernel's VM, the same containers
# on the debug kernel (KASAN, lockdep, kmemleak),
# the unit and integration suites again under ASan+UBSan and the concurrent
# parts under TSan (scripts/sanitizers.sh), and 60 s of every libFuzzer
# target (scripts/fuzz.sh). `scripts/test.sh --quick` skips the last two.
# Last line: `N passed, N failed` summed over every test case.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

source scripts/as-root.sh "$@"
bash scripts/install-deps.sh

QUICK=0
[[ ${1:-} == --quick ]] && QUICK=1
OUT=${SECCOMP_AGENT_TEST_OUT:-$ROOT/out/test}
rm -rf "$OUT" && mkdir -p "$OUT"
BAZEL=(bazel)
if [[ -n "${CI:-}" ]]; then
  BAZEL=(bazel --output_user_root=/var/cache/seccomp-agent/bazel-ci)
fi

status=0
# Each stage's heading; the previous stage's wall time is printed when the
# next one starts (CI has a time budget: README says what a cold run takes).
STAGE="" STAGE_START=$SECONDS
stage() {
  [[ -n $STAGE ]] && echo "   ($STAGE: $((SECONDS - STAGE_START)) s)"
  STAGE=$1 STAGE_START=$SECONDS
  [[ $1 == summary ]] && echo "   (total: $SECONDS s)"
  echo "== $1"
}
stage "bazel test //... (unit and integration)"
# The filter's status is not the test's: PIPESTATUS is read in the same
# command as the pipeline (after `|| true` it would be true's).
"${BAZEL[@]}" test //... --keep_going --cache_test_results=no --test_output=errors --local_test_jobs=1 2>&1 |
  tee "$OUT/bazel.log" | grep -E '^(//|FAIL|ERROR|Executed|INFO: Build)'
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
TESTLOGS=$("${BAZEL[@]}" info bazel-testlogs 2>/dev/null)
stage "repository checks (Markdown links, layering, formatting)"
SECCOMP_AGENT_BAZEL="${BAZEL[*]}" bash scripts/checks.sh >"$OUT/checks.log" 2>&1 || status=1
grep -E '^(FAILED|[0-9]+ passed)' "$OUT/checks.log"
# Free the memory of this server before the VM and the sanitizer builds.
[[ -n "${CI:-}" ]] && "${BAZEL[@]}" shutdown >/dev/null 2>&1

extra=("$OUT/checks.log")
if [[ -x kernel/selftest.sh ]]; then
  stage "kernel selftests in the VM (debug kernel)"
  bash kernel/selftest.sh >"$OUT/kernel-selftest.log" 2>&1 || status=1
  tail -n 3 "$OUT/kernel-selftest.log"
  extra+=("$OUT/kernel-selftest.log")
fi
if [[ -x integration/vm_conformance/run.sh ]]; then
  stage "injector conformance suite in the VM (kernel backend)"
  bash integration/vm_conformance/run.sh >"$OUT/vm-conformance.log" 2>&1 || status=1
  tail -n 3 "$OUT/vm-conformance.log"
  extra+=("$OUT/vm-conformance.log")
fi

if [[ -x integration/vm_e2e/run.sh ]]; then
  stage "agent end to end in the VM (kernel backend)"
  bash integration/vm_e2e/run.sh >"$OUT/vm-e2e.log" 2>&1 || status=1
  tail -n 2 "$OUT/vm-e2e.log"
  extra+=("$OUT/vm-e2e.log")
fi

if [[ -x integration/vm_runtime/run.sh ]]; then
  stage "real runc and crun containers in the VM (kernel backend)"
  bash integration/vm_runtime/run.sh >"$OUT/vm-runtime.log" 2>&1 || status=1
  tail -n 2 "$OUT/vm-runtime.log"
  extra+=("$OUT/vm-runtime.log")
  # The same cases on the debug kernel (KASAN, lockdep, kmemleak): no
  # report. Its benchmark only checks its paths (KASAN times mean nothing).
  stage "the same containers on the debug kernel (KASAN, lockdep, kmemleak)"
  bash integration/vm_runtime/run.sh --flavor debug --bench-calls 50 --bench-rounds 1 \
    >"$OUT/vm-runtime-debug.log" 2>&1 || status=1
  tail -n 2 "$OUT/vm-runtime-debug.log"
  extra+=("$OUT/vm-runtime-debug.log")
fi

if [[ $QUICK -eq 0 ]]; then
  stage "unit and integration suites under ASan+UBSan, concurrent parts under TSan"
  SANITIZERS_OUT=$OUT/sanitizers bash scripts/sanitizers.sh >"$OUT/sanitizers.log" 2>&1 || status=1
  grep -E '^ +(asan|tsan):' "$OUT/sanitizers.log" || tail -n 5 "$OUT/sanitizers.log"
  extra+=("$OUT/sanitizers.log")
  stage "libFuzzer targets, 60 s each"
  FUZZ_OUT=$OUT/fuzz bash scripts/fuzz.sh 60 >"$OUT/fuzz.log" 2>&1 || status=1
  grep -E '^(PASSED|FAILED):' "$OUT/fuzz.log" || tail -n 5 "$OUT/fuzz.log"
  extra+=("$OUT/fuzz.log")
fi

stage "summary"
python3 scripts/count_tests.py --bazel-log "$OUT/bazel.log" "$TESTLOGS" "${extra[@]}" || status=1
exit $status
