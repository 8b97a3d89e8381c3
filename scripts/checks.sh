#!/usr/bin/env bash
# Repository checks that are not unit tests (Markdown links), each one a test case in
# scripts/test.sh's summary: one line `PASSED: NAME` or `FAILED: NAME: why`
# per check, then `N passed, N failed`. Exit 0 only when all pass.
#
#   scripts/checks.sh               # every check
#   scripts/checks.sh links         # or any check's name
set -uo pipefail
cd "$(dirname "$0")/.."

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

CHECKS=(links)
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
