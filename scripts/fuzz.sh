#!/usr/bin/env bash
# Builds every libFuzzer target in agent/fuzz with clang-14
# (-fsanitize=fuzzer,address,undefined; `--config=fuzz` in .bazelrc) and runs
# each for SECONDS (default 60) on a temporary copy of its seed corpus.
# One case per target: passed = ran the full time with no crash, leak,
# timeout or OOM. Last line: `N passed, N failed`; exit 0 only when all pass.
#
#   scripts/fuzz.sh [SECONDS]
#   FUZZ_TARGETS="policy handoff_message" scripts/fuzz.sh 300   # a subset
#
# Bazel runs under its own output user root (the compiler is a repo_env, which
# would otherwise throw away the shared gcc build) and makes no bazel-* symlinks.
# Crash inputs are kept in $FUZZ_OUT (default out/fuzz) as <target>-crash-*;
# reproduce one with `<binary> <file>`, see agent/fuzz/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SECS=${1:-60}
if ! [[ $SECS =~ ^[0-9]+$ ]] || ((SECS < 1)); then
  echo "usage: scripts/fuzz.sh [SECONDS]" >&2
  exit 2
fi
ALL_TARGETS=(handoff_message policy plugin_decision injector_substitute)
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"
OUT=${FUZZ_OUT:-$ROOT/out/fuzz}
OUTPUT_ROOT=${FUZZ_OUTPUT_ROOT:-/var/cache/seccomp-agent/bazel-fuzz}
BAZEL=(bazel --output_user_root="$OUTPUT_ROOT")

if [[ $(id -u) -eq 0 ]]; then
  bash scripts/install-deps.sh
fi
for tool in clang-14 bazel; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found (scripts/install-deps.sh)" >&2; exit 2; }
done

rm -rf "$OUT" && mkdir -p "$OUT"
labels=()
for t in "${TARGETS[@]}"; do labels+=("//agent/fuzz:${t}_fuzzer"); done

start=$(date +%s)
echo "== build (clang-14, fuzzer+address+undefined): ${labels[*]}"
if ! "${BAZEL[@]}" build --config=fuzz --symlink_prefix=/ "${labels[@]}" >"$OUT/build.log" 2>&1; then
  grep -E '^(ERROR|FAILED)|error:' "$OUT/build.log" | head -20
  echo "fuzz.sh: build failed (log: $OUT/build.log)"
  echo "0 passed, ${#TARGETS[@]} failed"
  exit 1
fi
BIN=$("${BAZEL[@]}" info --config=fuzz bazel-bin 2>/dev/null)
echo "   built in $(($(date +%s) - start)) s"

# ASan/UBSan inside libFuzzer: stop at the first finding, keep stacks useful.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
for t in "${TARGETS[@]}"; do
  bin="$BIN/agent/fuzz/${t}_fuzzer"
  seeds="$ROOT/agent/fuzz/corpus/$t"
  work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX")
  cp -r "$seeds/." "$work/"
  nseeds=$(find "$seeds" -type f | wc -l)
  log="$OUT/$t.log"
  # Known findings first: every file in regressions/<target>/ must run clean.
  reg="$ROOT/agent/fuzz/regressions/$t"
  reg_ok=1
  if [[ -d $reg ]] && compgen -G "$reg/*" >/dev/null; then
    "$bin" -timeout=10 "$reg"/* >"$OUT/$t.regressions.log" 2>&1 || reg_ok=0
  fi
  # -timeout: one input taking > 10 s is a finding (hang); -rss_limit_mb: OOM.
  "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2560 -max_len=16384 \
    -print_final_stats=1 -artifact_prefix="$OUT/$t-" "$work" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  done_line=$(grep -E '^#[0-9]+\s+(DONE|INITED|REDUCE|NEW|pulse)' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$done_line")
  artifacts=$(find "$OUT" -maxdepth 1 -name "$t-*" -type f | grep -v '\.log$' || true)
  summary="execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=${nseeds}->${corp:-?}"
  if [[ $rc -eq 0 && -z $artifacts && $reg_ok -eq 1 ]]; then
    echo "PASSED: $t ($SECS s) $summary"
    passed=$((passed + 1))
  else
    echo "FAILED: $t (exit $rc) $summary"
    if [[ $reg_ok -eq 0 ]]; then
      echo "   a known finding (agent/fuzz/regressions/$t/) still reproduces:"
      grep -E '^(Running: |SUMMARY|.*property violated)' "$OUT/$t.regressions.log" | tail -2 | sed 's/^/     /'
    fi
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*property violated)' "$log" | head -5 | sed 's/^/   /'
    for a in $artifacts; do echo "   input: $a"; done
    echo "   log: $log; reproduce: $bin <input>"
    failed=$((failed + 1))
  fi
  rm -rf "$work"
done

[[ -n "${CI:-}" ]] && "${BAZEL[@]}" shutdown >/dev/null 2>&1
echo "   total $(($(date +%s) - start)) s"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
