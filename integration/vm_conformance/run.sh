#!/usr/bin/env bash
# Run the injector's conformance suite (agent/injector/conformance_test.cc)
# inside the project's VM on the patched kernel, where the "kernel"
# instantiation runs for real instead of skipping.
#
# Usage:
#   integration/vm_conformance/run.sh [--flavor lean|debug] [--kernel BZIMAGE]
#                                     [--trials N] [--smp N] [--timeout SECS]
#                                     [-- EXTRA_GTEST_ARGS...]
#
#   --flavor   kernel/build.sh flavor (default lean; a cache hit builds nothing)
#   --kernel   boot this bzImage instead of building one
#   --trials   TOCTOU trials per backend (default 10000)
#   --cost-ops operations per backend in the per-op cost case (default 1000)
#   --smp      vCPUs (default 2: the race needs a second CPU)
#   --timeout  QEMU timeout in seconds (default 900)
#
# The binary: Debian ships no static libspdlog/libfmt, so a fully static
# link is impossible; it is built with --dynamic_mode=off (the project's own
# code linked in, system libraries shared) and kernel/vm/run.sh copies the
# shared libraries ldd lists into the initramfs. Built under
# --platform_suffix=-vm so it never disturbs the default output tree.
#
# Prints the gtest output and, last, "N passed, N failed, N skipped".
# Exit status: 0 only if gtest passed, no kernel case was skipped (on the
# patched kernel the probe must find NOTIF_INJECT) and the console has no
# kernel report (BUG, WARNING, KASAN, lockdep, panic); otherwise non-zero.
set -euo pipefail

flavor=lean
kernel=""
trials=10000
cost_ops=1000
smp=2
timeout_secs=900
extra=()
while (($#)); do
	case "$1" in
	--flavor) flavor="${2:?}"; shift 2 ;;
	--kernel) kernel="${2:?}"; shift 2 ;;
	--trials) trials="${2:?}"; shift 2 ;;
	--cost-ops) cost_ops="${2:?}"; shift 2 ;;
	--smp) smp="${2:?}"; shift 2 ;;
	--timeout) timeout_secs="${2:?}"; shift 2 ;;
	--) shift; extra=("$@"); break ;;
	-h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "vm_conformance: unknown option $1" >&2; exit 2 ;;
	esac
done
[[ "$trials" =~ ^[1-9][0-9]*$ ]] || { echo "vm_conformance: --trials wants a number" >&2; exit 2; }
[[ "$cost_ops" =~ ^[1-9][0-9]*$ ]] || { echo "vm_conformance: --cost-ops wants a number" >&2; exit 2; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"

# What kernel/vm/run.sh needs (kernel/build.sh installs its own).
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
{ [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
if ((${#need[@]})); then
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "vm_conformance: building the suite" >&2
# --symlink_prefix=/: leave the bazel-bin/bazel-testlogs links of the
# default configuration alone.
bazel build --platform_suffix=-vm --dynamic_mode=off --symlink_prefix=/ \
	//agent/injector:conformance_test >&2
bin="$(bazel info output_path 2>/dev/null)/k8-fastbuild-vm/bin/agent/injector/conformance_test"
[[ -x "$bin" ]] || { echo "vm_conformance: $bin not built" >&2; exit 1; }

if [[ -z "$kernel" ]]; then
	echo "vm_conformance: kernel/build.sh $flavor" >&2
	kernel="$(kernel/build.sh "$flavor" | tail -n 1)"
fi
[[ -r "$kernel" ]] || { echo "vm_conformance: no kernel image at '$kernel'" >&2; exit 1; }

log="$(mktemp "${TMPDIR:-/tmp}/vm-conformance.XXXXXX")"
trap 'rm -f "$log"' EXIT
guest_args=""
for a in "${extra[@]}"; do guest_args+=" '${a//\'/}'"; done
set +e
kernel/vm/run.sh --kernel "$kernel" --smp "$smp" --mem 1024 --timeout "$timeout_secs" \
	--add "$bin:/bin/injector_conformance" -- \
	sh -c "INJECTOR_REQUIRE_KERNEL=1 INJECTOR_TOCTOU_TRIALS=$trials INJECTOR_COST_OPS=$cost_ops /bin/injector_conformance --gtest_color=no$guest_args" |
	tee "$log"
rc="${PIPESTATUS[0]}"
set -e

passed="$(grep -a -c '^\[       OK \]' "$log" || true)"
failed="$(grep -a -c '^\[  FAILED  \] .*(' "$log" || true)"
skipped="$(grep -a -c '^\[  SKIPPED \] .*(' "$log" || true)"
kernel_skipped="$(grep -a -c '^\[  SKIPPED \] .*/kernel (' "$log" || true)"
echo
echo "vm_conformance: TOCTOU results:"
grep -a '^TOCTOU ' "$log" || echo "  (none printed)"
# The kernel must not have complained while the agent drove it.
if grep -a -n -E 'BUG:|WARNING:|KASAN|UBSAN|Kernel panic|Oops|possible circular locking|inconsistent lock state|sleeping function called from invalid context' "$log" >&2; then
	echo "vm_conformance: the kernel reported a problem (lines above)" >&2
	((rc == 0)) && rc=1
fi
if ((kernel_skipped > 0)); then
	echo "vm_conformance: $kernel_skipped kernel case(s) SKIPPED: the booted kernel has no NOTIF_INJECT" >&2
	((rc == 0)) && rc=1
fi
if ((passed == 0)); then
	echo "vm_conformance: no test passed (guest status $rc)" >&2
	((rc == 0)) && rc=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
exit "$rc"
