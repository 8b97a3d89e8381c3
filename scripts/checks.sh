#!/usr/bin/env bash
# Repository checks that are not unit tests (Markdown links, layering,
# formatting, function length), each
# one a test case in scripts/test.sh's summary: one line `PASSED: NAME` or
# `FAILED: NAME: why` per check, then `N passed, N failed`. Exit 0 only when
# all pass.
#
#   scripts/checks.sh               # every check
#   scripts/checks.sh links         # or any check's name
#
# SECCOMP_AGENT_BAZEL overrides the Bazel command (scripts/test.sh passes
# its own, e.g. with CI's --output_user_root).
set -uo pipefail
cd "$(dirname "$0")/.."
read -r -a BAZEL <<<"${SECCOMP_AGENT_BAZEL:-bazel}"
QERR=$(mktemp)
trap 'rm -f "$QERR"' EXIT

passed=0
failed=0
pass() {
  echo "PASSED: $1"
  passed=$((passed + 1))
}
fail() {
  echo "FAILED: $1: $2"
  failed=$((failed + 1))
}

# Every relative link in the Markdown files resolves (one case per file).
check_links() {
  local line
  while IFS= read -r line; do
    case $line in
      PASSED:*) pass "${line#PASSED: }" ;;
      FAILED:*) line=${line#FAILED: }; fail "${line%%: *}" "${line#*: }" ;;
    esac
  done < <(python3 scripts/check_links.py . || true)
}

query() {  # expression -> labels, one a line; exits non-zero when the query fails
  "${BAZEL[@]}" query --noshow_progress --output=label "$1" 2>"$QERR"
}

# $1 case name, $2 query whose result must be empty.
expect_empty() {
  local out
  if ! out=$(query "$2"); then
    fail "$1" "bazel query failed: $(tail -n 3 "$QERR")"
  elif [[ -n $out ]]; then
    fail "$1" "$(echo $out)"
  else
    pass "$1"
  fi
}

# The injector and the handoff know nothing of policies or plugins, and the
# policy depends on nothing of ours but the model, the protos and the common
# helpers:
#  1. visibility: no target of agent/policy is visible to the injector or
#     the handoff, so a direct dependency fails `bazel build` (the control
#     proves the query sees visibility at all: the engine may use it);
#  2. no dependency path at all, also through a third package;
#  3. the policy's own dependencies.
check_layering() {
  local pkg out
  for pkg in //agent/injector //agent/handoff; do
    expect_empty "layering-visibility $pkg" "visible($pkg:all, //agent/policy:all)"
    expect_empty "layering-path $pkg" "somepath($pkg/..., //agent/policy/... + //agent/plugin/...)"
  done
  out=$(query "visible(//agent/engine:engine, //agent/policy:policy)")
  if [[ $out == //agent/policy:policy ]]; then
    pass "layering-visibility control (the engine may use the policy)"
  else
    fail "layering-visibility control" "the engine should see //agent/policy:policy, got '$out'"
  fi
  expect_empty "layering-policy-deps" \
    "deps(//agent/policy:all) intersect //... except //agent/policy/... \
     except //agent/model/... except //agent/common/... except //proto/..."
}

# Every tracked C++ file outside kernel/ (the kernel has its own style, held
# by checkpatch in kernel/build.sh) is as clang-format formats it with the
# repository's .clang-format: one case, naming the files that differ.
check_format() {
  local f bad=()
  if ! command -v clang-format >/dev/null; then
    fail format "clang-format not installed (scripts/install-deps.sh installs it)"
    return
  fi
  while IFS= read -r f; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done < <(git ls-files '*.cc' '*.h' | grep -v '^kernel/')
  if ((${#bad[@]} == 0)); then
    pass format
  else
    fail format "${#bad[@]} file(s) differ from clang-format (run clang-format -i on them): ${bad[*]}"
  fi
}

# No function outside tests and benches is longer than 120 lines
# (scripts/function_lengths.py says how it counts).
check_function_length() {
  local out
  if out=$(python3 scripts/function_lengths.py --limit 120); then
    pass function-length
  else
    fail function-length "longer than 120 lines (lines file:line): $(echo $out)"
  fi
}

# The agent reads /proc and /sys with agent/common/read_file.h, never with
# a stream iterator: a failed read (ESRCH once the task has exited) throws
# from std::istreambuf_iterator and ends the agent (it did, in the VM's
# restart case). Tests, benches and examples may use streams.
check_no_stream_reads() {
  local hits
  hits=$(git grep -n 'istreambuf_iterator' -- 'agent/*.cc' 'agent/*.h' 'oci-hook/*.cc' \
    ':!*_test.cc' ':!agent/bench/*' ':!agent/testing/*' ':!agent/plugin/examples/*' || true)
  if [[ -z "$hits" ]]; then
    pass no-stream-reads
  else
    fail no-stream-reads "std::istreambuf_iterator in agent code (use agent/common/read_file.h): $(echo $hits)"
  fi
}

CHECKS=(links layering format function_length no_stream_reads)
[[ $# -gt 0 ]] && CHECKS=("$@")
for c in "${CHECKS[@]}"; do
  if [[ $(type -t "check_$c") != function ]]; then
    fail "$c" "no such check"
    continue
  fi
  "check_$c"
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
