#!/usr/bin/env bash
# Runs the test suites under sanitizers (gcc, only our code instrumented):
#   1. every unit and integration test (`bazel test`, integration tests run
#      real runc/crun) with --config=asan: ASan + UBSan + LeakSanitizer;
#   2. the tests that exercise threads with --config=tsan (see TSAN_TARGETS).
# Targets tagged no_sanitizers (the RSS soak: shadow memory and quarantine
# make RSS meaningless; LeakSanitizer covers leaks here) are left out.
# Each config has its own Bazel output user root (one output base per
# checkout under it; actions come from the shared disk cache), so the normal
# build's analysis cache is kept; no bazel-* symlinks are made. Last line: `N passed, N failed` summed
# over test cases (scripts/count_tests.py); exit 0 only when all pass.
#
#   scripts/sanitizers.sh            # both
#   scripts/sanitizers.sh asan       # or: tsan
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

source scripts/as-root.sh "$@"
bash scripts/install-deps.sh

WHAT=${1:-all}
OUT=${SANITIZERS_OUT:-$ROOT/out/sanitizers}
CACHE=${SANITIZERS_CACHE:-/var/cache/seccomp-agent}
SUPP=$ROOT/agent/fuzz/sanitizers
rm -rf "$OUT" && mkdir -p "$OUT"

# Every package of the workspace, without descending into bazel-* symlinks
# (they point into ANOTHER output base, whose external/ holds BUILD files).
PATTERNS=("//:all")
for d in */; do
  d=${d%/}
  [[ $d == bazel-* || $d == out ]] && continue
  [[ -n $(find "$d" -name BUILD.bazel -print -quit) ]] && PATTERNS+=("//$d/...")
done

# The concurrent parts that TSan can judge: the notification engine
# (leader/follower workers, async handler threads), the handoff server
# (accept thread, per-connection state) and the injector (replay cache and
# task contexts shared by engine threads). NOT the plugin dispatcher
# (dispatcher_test, examples_test): Debian's libgrpc is not instrumented, so
# every completion handed from grpc's threads to grpc's inline headers in our
# code is a race report (4272 in one run, all inside grpc::internal), and
# their deadline assertions (<= 110 ms) fail under TSan's slowdown.
# Suppressing grpc::internal frames would also hide our callbacks (they run
# under those frames). See agent/fuzz/README.md.
TSAN_TARGETS=(
  //agent/engine:engine_test
  //agent/engine:engine_rate_test
  //agent/handoff:server_test
  //agent/injector:injector_test
)

status=0
counts=()
run_config() {  # name, output user root, bazel test args...
  local name=$1 base=$2
  shift 2
  local start log testlogs
  start=$(date +%s)
  log=$OUT/$name.log
  echo "== bazel test --config=$name $*"
  # PIPESTATUS is read right after the pipeline (after `|| true` it would
  # be true's status, and a Bazel failure would be lost).
  bazel --output_user_root="$base" test --config="$name" --symlink_prefix=/ --keep_going \
    --test_output=errors --local_test_jobs=1 "$@" 2>&1 | tee "$log" |
    grep -E '^(//|FAIL|ERROR|Executed|INFO: Build)'
  [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
  testlogs=$(bazel --output_user_root="$base" info --config="$name" bazel-testlogs 2>/dev/null)
  # A sanitizer that reports at exit (LSan leaks, TSan's exit code 66) after
  # every gtest case passed leaves Bazel's FAILED with no failing case in
  # test.xml: count_tests.py counts such a target as one failed case (once).
  python3 scripts/count_tests.py --bazel-log "$log" "$testlogs" >"$OUT/$name.count" || status=1
  echo "   $name: $(tail -n 1 "$OUT/$name.count") in $(($(date +%s) - start)) s"
  counts+=("$OUT/$name.count")
}

if [[ $WHAT == all || $WHAT == asan ]]; then
  run_config asan "$CACHE/bazel-asan" \
    --test_env=LSAN_OPTIONS=suppressions=$SUPP/lsan.supp:print_suppressions=0 \
    --test_tag_filters=-no_sanitizers \
    "${PATTERNS[@]}"
fi
if [[ $WHAT == all || $WHAT == tsan ]]; then
  run_config tsan "$CACHE/bazel-tsan" \
    --test_env=TSAN_OPTIONS=suppressions=$SUPP/tsan.supp:second_deadlock_stack=1:history_size=4 \
    "${TSAN_TARGETS[@]}"
fi

[[ -n "${CI:-}" ]] && {
  bazel --output_user_root="$CACHE/bazel-asan" shutdown >/dev/null 2>&1
  bazel --output_user_root="$CACHE/bazel-tsan" shutdown >/dev/null 2>&1
}
echo "== summary"
for c in "${counts[@]}"; do grep '^FAILED' "$c" || true; done
# count_tests.py sums the per-config summaries (passed as extra logs; the
# empty folder stands for "no further test.xml").
mkdir -p "$OUT/none"
python3 scripts/count_tests.py "$OUT/none" "${counts[@]}" | tail -n 1
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
exit $status
