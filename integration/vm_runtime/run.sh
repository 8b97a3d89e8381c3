#!/usr/bin/env bash
# Real runc 1.1.5 and crun 1.8.1 containers served through
# SECCOMP_IOCTL_NOTIF_INJECT: one boot of the patched kernel (QEMU, TCG)
# runs the agent (kernel backend auto-probed) and, under both runtimes,
# redirect_open, rewrite_bind, deny and spoof; replace_write under crun
# (runc refuses NOTIFY on write); a config.json made by
# `seccomp-agent-hook precreate` as the installed hooks.d file runs it; the
# TOCTOU race from inside a container (the path bytes flipped, and the
# dirfd or cwd swapped under a relative path); the agent killed -9 and
# restarted under a trapping container; and the openat benchmark (INJECT vs
# forced emulation vs CONTINUE vs no trap). Every substitution's
# decision-log line must say "backend":"kernel"; the console and the
# guest's dmesg must hold no kernel report. See integration/vm_runtime/guest.sh.
#
# Usage: integration/vm_runtime/run.sh [--flavor lean|debug] [--kernel BZIMAGE]
#            [--trials N] [--bench-calls N] [--bench-rounds N] [--timeout SECS]
#
#   --flavor        kernel/build.sh flavor (default lean); debug: KASAN,
#                   lockdep and kmemleak (scanned after the cases; its
#                   absence fails)
#   --trials        TOCTOU trials per race (default 2000; the dirfd/cwd
#                   swap's CONTINUE controls run a quarter of them)
#   --bench-calls   openat calls per benchmark round (default 500)
#   --bench-rounds  rounds per benchmark row (default 3; the row is the
#                   median of the rounds' medians)
#   --timeout       VM deadline in seconds (default 3600 lean, 7200 debug)
#
# The guest image (runtimes and their libraries, busybox, the agent, the
# hook, the bundles) is cached by content hash under
# /var/cache/seccomp-agent/vm-runtime (VM_RUNTIME_CACHE_DIR).
# Last line: "N passed, N failed". Exit 0 only when all pass.
set -euo pipefail

flavor=lean
kernel=""
trials=2000
calls=500
rounds=3
timeout_secs=""
while (($#)); do
	case "$1" in
	--flavor) flavor="${2:?}"; shift 2 ;;
	--kernel) kernel="${2:?}"; shift 2 ;;
	--trials) trials="${2:?}"; shift 2 ;;
	--bench-calls) calls="${2:?}"; shift 2 ;;
	--bench-rounds) rounds="${2:?}"; shift 2 ;;
	--timeout) timeout_secs="${2:?}"; shift 2 ;;
	-h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "vm_runtime: unknown option $1" >&2; exit 2 ;;
	esac
done
[[ "$flavor" == lean || "$flavor" == debug ]] ||
	{ echo "vm_runtime: --flavor is lean or debug, not '$flavor'" >&2; exit 2; }
# KASAN and lockdep make the debug kernel several times slower.
[[ -n "$timeout_secs" ]] || { [[ "$flavor" == debug ]] && timeout_secs=7200 || timeout_secs=3600; }
for n in "$trials" "$calls" "$rounds" "$timeout_secs"; do
	[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "vm_runtime: '$n' is not a positive number" >&2; exit 2; }
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
here=integration/vm_runtime
cache="${VM_RUNTIME_CACHE_DIR:-/var/cache/seccomp-agent/vm-runtime}"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v runc >/dev/null || need+=(runc)
command -v crun >/dev/null || need+=(crun)
{ [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
if ((${#need[@]})); then
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "vm_runtime: building" >&2
# Project code linked in, system libraries shared (kernel/vm/run.sh copies
# what ldd lists); own output tree, default bazel-* links left alone.
bazel build --platform_suffix=-vm --dynamic_mode=off --symlink_prefix=/ \
	//agent:seccomp-agent //oci-hook:seccomp-agent-hook \
	//integration/vm_runtime:ctr_workload >&2
bin="$(bazel info output_path 2>/dev/null)/k8-fastbuild-vm/bin"
for f in agent/seccomp-agent oci-hook/seccomp-agent-hook integration/vm_runtime/ctr-workload; do
	[[ -x "$bin/$f" ]] || { echo "vm_runtime: $bin/$f not built" >&2; exit 1; }
done
[[ -n "$kernel" ]] || kernel="$(kernel/build.sh "$flavor" | tail -n 1)"
[[ -r "$kernel" ]] || { echo "vm_runtime: no kernel image at '$kernel'" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/vm-runtime.XXXXXX")"
trap 'rm -rf "$work"' EXIT
img="$work/image"

# The container rootfs: static busybox, the workload, the files the cases
# open (contents the guest checks for).
rootfs="$img/ctr/rootfs"
mkdir -p "$rootfs"/{bin,proc,dev,sys,tmp,etc,root,forbidden,race,bench,dr/a,dr/b}
chmod 1777 "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
	[[ "$a" == busybox ]] || ln -sf busybox "$rootfs/bin/$a"
done
cp "$bin/integration/vm_runtime/ctr-workload" "$rootfs/bin/ctr-workload"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
printf '127.0.0.1 localhost ORIGINAL-HOSTS\n' >"$rootfs/etc/hosts"
printf '127.0.0.1 localhost REDIRECTED-BY-AGENT\n' >"$rootfs/etc/hosts.vmrt"
for f in file1 ctrl1; do echo ALLOWED >"$rootfs/race/$f"; done
for f in file0 ctrl0; do echo FORBIDDEN >"$rootfs/race/$f"; done
echo REDIRECTED >"$rootfs/race/file1.alt"
# The dirfd/cwd swap: f.alt exists in both, so a substitute resolved
# against the swapped dirfd/cwd (instead of the absolute path the agent
# resolved) would be seen as an escape.
for f in f c; do echo ALLOWED >"$rootfs/dr/a/$f"; done
for f in f f.alt c; do echo FORBIDDEN >"$rootfs/dr/b/$f"; done
echo REDIRECTED >"$rootfs/dr/a/f.alt"
for f in in out plain; do echo "$f" >"$rootfs/bench/$f"; done

# One config.json per case, from runc's own default spec.
mkdir -p "$work/spec"
runc spec --bundle "$work/spec"
python3 "$here/bundles.py" "$work/spec/config.json" "$img/ctr/bundles"

# Policies: the agent's, the hook's (same file) and the emulation one.
mkdir -p "$img/etc/vmrt/policies"
cp "$here/policy.yaml" "$img/etc/vmrt/policy.yaml"
cp "$here/policy.yaml" "$img/etc/vmrt/policies/vmrt.yaml"
sed 's/^injection: {mode: auto}$/injection: {mode: emulate}/' "$here/policy.yaml" \
	>"$img/etc/vmrt/emulate.yaml"
grep -q '^injection: {mode: emulate}$' "$img/etc/vmrt/emulate.yaml" ||
	{ echo "vm_runtime: policy.yaml has no 'injection: {mode: auto}' line" >&2; exit 1; }

# The hook as oci-hook/install.sh installs it, and the command its
# hooks.d precreate file names (what podman would run).
sh oci-hook/install.sh --binary "$bin/oci-hook/seccomp-agent-hook" --prefix /usr/local \
	--config /etc/vmrt/hook.json --destdir "$img" >&2
cat >"$img/etc/vmrt/hook.json" <<'EOF'
{"agent_socket": "/run/sa/agent.sock", "hook_socket": "/run/sa/hook.sock",
 "policy_dir": "/etc/vmrt/policies", "compile": true, "on_agent_down": "fail",
 "runtime": "crun"}
EOF
python3 - "$img" >"$img/etc/vmrt/precreate.sh" <<'EOF'
import json, shlex, sys
h = json.load(open(sys.argv[1] + "/usr/share/containers/oci/hooks.d/seccomp-agent-precreate.json"))
assert h["stages"] == ["precreate"], h
print("exec " + " ".join(shlex.quote(a) for a in [h["hook"]["path"]] + h["hook"]["args"][1:]))
EOF

log="$work/console.log"
echo "vm_runtime: booting $kernel" >&2
set +e
kernel/vm/run.sh --kernel "$kernel" --smp 2 --mem 2048 --timeout "$timeout_secs" \
	--image-cache "$cache" \
	--add "$img:/" \
	--add "$bin/agent/seccomp-agent:/bin/seccomp-agent" \
	--add "$(command -v runc):/usr/sbin/runc" \
	--add "$(command -v crun):/usr/bin/crun" \
	--add "$here/guest.sh:/bin/vmrt-guest.sh" \
	-- sh /bin/vmrt-guest.sh "$trials" "$calls" "$rounds" "$flavor" | tee "$log"
rc="${PIPESTATUS[0]}"
set -e
tr -d '\r' <"$log" >"$work/console"

passed="$(grep -c '^ok - ' "$work/console" || true)"
failed="$(grep -c '^not ok - ' "$work/console" || true)"
reports="BUG:|WARNING:|KASAN|possible circular locking|possible recursive locking"
reports+="|inconsistent lock state|INFO: possible|INFO: task .* blocked|Oops|Kernel panic"
reports+="|general protection fault|sleeping function called from invalid context|UBSAN"
# The guest's own check lines are not kernel output.
if grep -v -E '^(ok|not ok) - ' "$work/console" | grep -E "$reports" >"$work/reports"; then
	echo "not ok - no kernel report (KASAN/lockdep/BUG/WARNING)"
	sed 's/^/# /' "$work/reports" | head -n 40
	failed=$((failed + 1))
else
	echo "ok - no kernel report (KASAN/lockdep/BUG/WARNING)"
	passed=$((passed + 1))
fi
python3 "$here/bench_table.py" "$work/console" || failed=$((failed + 1))
if ((passed + failed <= 1)); then
	echo "vm_runtime: the guest ran no check (status $rc)" >&2
	failed=$((failed + 1))
fi
((rc == 0)) || ((failed > 0)) || { echo "vm_runtime: guest status $rc" >&2; failed=1; }
echo "$passed passed, $failed failed"
((failed == 0))
