#!/usr/bin/env bash
# Run agent/bench/vm_bench.cc in the project's VM on the patched kernel:
# openat under CONTINUE vs NOTIF_INJECT vs open + ADDFD(SEND), as ratios
# within one VM run (target: INJECT <= 1.2x CONTINUE). Prints the markdown
# table last.
#
# Usage:
#   agent/bench/vm_bench.sh [--flavor lean|debug] [--kernel BZIMAGE]
#                           [--iterations N] [--rounds N] [--smp N]
#                           [--timeout SECS]
#
# Built like integration/vm_conformance/run.sh: --dynamic_mode=off under
# --platform_suffix=-vm (kernel/vm/run.sh copies the shared libraries ldd
# lists into the initramfs). QEMU runs under TCG: absolute times are
# meaningless, only the ratios are.
set -euo pipefail

flavor=lean
kernel=""
iterations=2000
rounds=5
smp=2
timeout_secs=900
while (($#)); do
	case "$1" in
	--flavor) flavor="${2:?}"; shift 2 ;;
	--kernel) kernel="${2:?}"; shift 2 ;;
	--iterations) iterations="${2:?}"; shift 2 ;;
	--rounds) rounds="${2:?}"; shift 2 ;;
	--smp) smp="${2:?}"; shift 2 ;;
	--timeout) timeout_secs="${2:?}"; shift 2 ;;
	-h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "vm_bench: unknown option $1" >&2; exit 2 ;;
	esac
done
[[ "$iterations" =~ ^[1-9][0-9]*$ ]] || { echo "vm_bench: --iterations wants a number" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "vm_bench: --rounds wants a number" >&2; exit 2; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"

echo "vm_bench: building" >&2
bazel build -c opt --platform_suffix=-vm --dynamic_mode=off --symlink_prefix=/ \
	//agent/bench:vm_bench >&2
bin="$(bazel info -c opt --platform_suffix=-vm output_path 2>/dev/null)/k8-opt-vm/bin/agent/bench/vm_bench"
[[ -x "$bin" ]] || { echo "vm_bench: $bin not built" >&2; exit 1; }

if [[ -z "$kernel" ]]; then
	echo "vm_bench: kernel/build.sh $flavor" >&2
	kernel="$(kernel/build.sh "$flavor" | tail -n 1)"
fi
[[ -r "$kernel" ]] || { echo "vm_bench: no kernel image at '$kernel'" >&2; exit 1; }

log="$(mktemp "${TMPDIR:-/tmp}/vm-bench.XXXXXX")"
trap 'rm -f "$log"' EXIT
set +e
kernel/vm/run.sh --kernel "$kernel" --smp "$smp" --mem 512 --timeout "$timeout_secs" \
	--add "$bin:/bin/vm_bench" -- /bin/vm_bench "$iterations" "$rounds" | tee "$log"
rc="${PIPESTATUS[0]}"
set -e
if grep -a -n -E 'BUG:|WARNING:|KASAN|UBSAN|Kernel panic|Oops' "$log" >&2; then
	echo "vm_bench: the kernel reported a problem (lines above)" >&2
	((rc == 0)) && rc=1
fi
echo
grep -a -E '^(vm_bench: kernel|\| |INJECT/CONTINUE)' "$log" || echo "vm_bench: no table printed"
exit "$rc"
