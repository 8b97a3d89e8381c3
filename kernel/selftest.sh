#!/usr/bin/env bash
# Run the SECCOMP_IOCTL_NOTIF_INJECT selftests in a VM on the debug kernel
# (KASAN, lockdep, kmemleak, DEBUG_ATOMIC_SLEEP).
#
# Usage: kernel/selftest.sh [--trials N] [--flavor lean|debug] [--smp N]
#                           [--kernel BZIMAGE]
#
#   --trials N   TOCTOU trials per race test (default 10000)
#   --flavor F   kernel to run on (default debug; lean skips kmemleak)
#   --kernel B   skip build.sh and boot B; its folder must look like
#                build.sh's output (headers/, selftests/); for checking a
#                work-in-progress tree
#
# Builds the kernel with kernel/build.sh (or reuses its cache), builds the
# test statically against that kernel's installed headers, boots it with
# kernel/vm/run.sh and counts:
#   - one case per TAP "ok N" / "not ok N" line of seccomp_inject_test
#     (a case the plan announced but that never reported counts as failed),
#   - "no kernel report": no KASAN, lockdep, BUG, WARNING or oops on the
#     console,
#   - "no kmemleak report" (debug flavor): the kmemleak scan after the
#     tests is empty.
# The last line of stdout is "N passed, N failed"; the exit status is 0
# only when nothing failed. The full console log is kept in
# $SELFTEST_LOG_DIR (default /tmp/seccomp-agent-selftest).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
trials=10000
flavor=debug
smp=2
kernel=""

while (($#)); do
	case "$1" in
	--trials) trials="${2:?}"; shift 2 ;;
	--flavor) flavor="${2:?}"; shift 2 ;;
	--smp) smp="${2:?}"; shift 2 ;;
	--kernel) kernel="${2:?}"; shift 2 ;;
	*)
		echo "usage: $0 [--trials N] [--flavor lean|debug] [--smp N] [--kernel BZIMAGE]" >&2
		exit 2
		;;
	esac
done

log() { echo "kernel/selftest.sh: $*" >&2; }

start=$SECONDS
if [[ -n "$kernel" ]]; then
	bzimage="$kernel"
else
	bzimage="$("$here/build.sh" "$flavor" | tail -n 1)"
fi
kdir="$(dirname "$bzimage")"
log "kernel: $bzimage (ready after $((SECONDS - start)) s)"

logdir="${SELFTEST_LOG_DIR:-/tmp/seccomp-agent-selftest}"
mkdir -p "$logdir"
work="$(mktemp -d "${TMPDIR:-/tmp}/selftest.XXXXXX")"
trap 'rm -rf "$work"' EXIT

gcc -static -O2 -Wall -Werror \
	-I "$kdir/selftests" -isystem "$kdir/headers/include" \
	-o "$work/seccomp_inject_test" \
	"$kdir/selftests/seccomp/seccomp_inject_test.c" -lpthread

cat >"$work/run-in-vm.sh" <<'EOF'
#!/bin/sh
# Runs inside the VM: the selftests, then a kmemleak scan.
leak=/sys/kernel/debug/kmemleak
if [ -w "$leak" ]; then
	# Forget whatever boot left behind; only leaks from here on count.
	echo scan >"$leak"
	echo clear >"$leak"
fi
# The pseudo-terminal case needs devpts.
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
cd /tmp
SECCOMP_INJECT_TRIALS="$1" /bin/seccomp_inject_test
rc=$?
echo "SELFTEST-EXIT: $rc"
if [ -w "$leak" ]; then
	# Two scans: kmemleak reports an object only once it has stayed
	# unreferenced across scans and is older than a few seconds.
	sleep 6
	echo scan >"$leak"
	echo scan >"$leak"
	cat "$leak" >/tmp/leaks
	if [ -s /tmp/leaks ]; then
		echo "KMEMLEAK-REPORT-BEGIN"
		cat /tmp/leaks
		echo "KMEMLEAK-REPORT-END"
	else
		echo "KMEMLEAK: clean"
	fi
else
	echo "KMEMLEAK: unavailable"
fi
exit $rc
EOF

console="$logdir/console-$flavor.log"
log "booting the VM (console: $console)"
vm_start=$SECONDS
set +e
"$here/vm/run.sh" --kernel "$bzimage" --smp "$smp" --mem 1024 --timeout 1500 \
	--add "$work/seccomp_inject_test:/bin/seccomp_inject_test" \
	--add "$work/run-in-vm.sh:/bin/run-in-vm.sh" \
	-- sh /bin/run-in-vm.sh "$trials" >"$console" 2>&1
vm_rc=$?
set -e
log "VM finished in $((SECONDS - vm_start)) s with status $vm_rc"

# Console lines, without carriage returns.
tr -d '\r' <"$console" >"$work/console"
grep -E '^(not )?ok [0-9]+ |^# (PASSED|FAILED|Totals)|TOCTOU' "$work/console" || true

passed=$(grep -cE '^ok [0-9]+ ' "$work/console" || true)
failed=$(grep -cE '^not ok [0-9]+ ' "$work/console" || true)
plan=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$work/console" | head -n 1)
if [[ -z "$plan" ]]; then
	log "the test never started (no TAP plan)"
	failed=$((failed + 1))
elif ((passed + failed < plan)); then
	log "only $((passed + failed)) of $plan cases reported"
	failed=$((failed + plan - passed - failed))
fi

# Kernel reports anywhere on the console.
reports='BUG:|WARNING:|KASAN|possible circular locking|possible recursive locking|inconsistent lock state|INFO: possible|INFO: task .* blocked|Oops|Kernel panic|general protection fault|sleeping function called from invalid context|UBSAN'
if grep -E "$reports" "$work/console" >"$work/reports"; then
	echo "not ok - no kernel report (KASAN/lockdep/BUG/WARNING)"
	sed 's/^/# /' "$work/reports" | head -n 40
	failed=$((failed + 1))
else
	echo "ok - no kernel report (KASAN/lockdep/BUG/WARNING)"
	passed=$((passed + 1))
fi

if [[ "$flavor" == debug ]]; then
	if grep -q '^KMEMLEAK: clean' "$work/console"; then
		echo "ok - no kmemleak report"
		passed=$((passed + 1))
	else
		echo "not ok - no kmemleak report"
		sed -n '/KMEMLEAK-REPORT-BEGIN/,/KMEMLEAK-REPORT-END/p' "$work/console" |
			head -n 60 | sed 's/^/# /'
		failed=$((failed + 1))
	fi
fi

if ! grep -q '^SELFTEST-EXIT: ' "$work/console"; then
	log "the VM stopped before the tests finished (run.sh status $vm_rc)"
	((failed > 0)) || failed=1
fi

log "total time $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
((failed == 0))
