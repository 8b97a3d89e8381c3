#!/usr/bin/env bash
# The kernel backend end to end: the same agent binary as on the host boots
# inside the project's VM on the patched kernel and serves a workload with
# redirect_open, rewrite_bind and replace_write; the decision log must name
# the kernel backend. No container runtime runs in the VM, so the workload
# is started by agent/tools:notify-launcher, which hands its listener to the
# agent exactly as runc does (JSON + SCM_RIGHTS).
#
# Usage: integration/vm_e2e/run.sh [--kernel BZIMAGE] [--flavor lean|debug]
# Last line: "N passed, N failed". Exit 0 only when all pass.
set -euo pipefail
flavor=lean
kernel=""
while (($#)); do
	case "$1" in
	--kernel) kernel="${2:?}"; shift 2 ;;
	--flavor) flavor="${2:?}"; shift 2 ;;
	*) echo "vm_e2e: unknown option $1" >&2; exit 2 ;;
	esac
done
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
here=integration/vm_e2e

# Same build flavour as integration/vm_conformance: project code linked in,
# system libraries shared (kernel/vm/run.sh copies them), own output tree.
bazel build --platform_suffix=-vm --dynamic_mode=off --symlink_prefix=/ \
	//agent:seccomp-agent //agent/tools:notify-launcher >&2
bin="$(bazel info output_path 2>/dev/null)/k8-fastbuild-vm/bin"
[[ -n "$kernel" ]] || kernel="$(kernel/build.sh "$flavor" | tail -n 1)"

log="$(mktemp "${TMPDIR:-/tmp}/vm-e2e.XXXXXX")"
trap 'rm -f "$log"' EXIT
set +e
kernel/vm/run.sh --kernel "$kernel" --smp 2 --mem 1024 --timeout 300 \
	--add "$bin/agent/seccomp-agent:/bin/seccomp-agent" \
	--add "$bin/agent/tools/notify-launcher:/bin/notify-launcher" \
	--add "$here/policy.yaml:/etc/vm-policy.yaml" \
	--add "$here/guest.sh:/bin/vm-e2e.sh" \
	-- sh /bin/vm-e2e.sh | tee "$log"
rc="${PIPESTATUS[0]}"
set -e
if grep -a -n -E 'BUG:|WARNING:|KASAN|Kernel panic|Oops|possible circular locking' "$log" >&2; then
	echo "vm_e2e: the kernel reported a problem" >&2
	rc=1
fi
passed="$(grep -a -c '^ok - ' "$log" || true)"
failed="$(grep -a -c '^not ok - ' "$log" || true)"
if ((passed + failed == 0)); then failed=1; echo "vm_e2e: the guest ran no check (status $rc)" >&2; fi
((rc == 0)) || ((failed > 0)) || failed=1
echo "$passed passed, $failed failed"
((failed == 0))
