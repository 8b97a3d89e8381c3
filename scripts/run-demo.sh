#!/usr/bin/env bash
# README command 1: builds the agent, starts it with its built-in default
# policy, runs a real busybox container under runc whose mkdir/mknod/openat
# calls trap to the agent, and prints what the container saw plus a table of
# the agent's decisions. Needs root (containers, seccomp listeners).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

source scripts/as-root.sh "$@"
source scripts/lib/busybox_rootfs.sh
bash scripts/install-deps.sh

echo "== building //agent:seccomp-agent"
# A failed build stops here: bazel-bin may still hold an older binary.
BUILD_LOG=$(mktemp /tmp/seccomp-agent-demo-build.XXXXXX)
if ! bazel build //agent:seccomp-agent >"$BUILD_LOG" 2>&1; then
  grep -E '^(ERROR|FAIL)' "$BUILD_LOG" >&2 || tail -n 20 "$BUILD_LOG" >&2
  rm -f "$BUILD_LOG"
  echo "run-demo: the build failed (not running an older binary)" >&2
  exit 1
fi
grep -E '^INFO: Build' "$BUILD_LOG" || true
rm -f "$BUILD_LOG"
AGENT_BIN="$ROOT/bazel-bin/agent/seccomp-agent"

WORK=$(mktemp -d /tmp/seccomp-agent-demo.XXXXXX)
ID="seccomp-agent-demo-$$"
SOCK="$WORK/agent.sock"
DECISIONS="$WORK/decisions.jsonl"
AGENT_PID=""
cleanup() {
  runc --root "$WORK/state" delete -f "$ID" >/dev/null 2>&1 || true
  if [[ -n $AGENT_PID ]] && kill -0 "$AGENT_PID" 2>/dev/null; then
    kill -KILL "$AGENT_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# busybox rootfs and a bundle whose seccomp listener goes to the agent.
ROOTFS="$WORK/bundle/rootfs"
busybox_rootfs "$ROOTFS" root
mkdir -p "$WORK/state"
echo "demo-container" >"$ROOTFS/etc/hostname"
echo "root:x:0:" >"$ROOTFS/etc/group"
runc spec --bundle "$WORK/bundle"

WORKLOAD='
echo "hostname file says: $(cat /etc/hostname)"
mkdir /tmp/demo && echo "mkdir /tmp/demo: created"
mkdir /proc/evil 2>&1 || echo "mkdir /proc/evil: refused"
mkdir /sys/fs/cgroup/evil 2>&1 || echo "mkdir /sys/fs/cgroup/evil: refused"
mknod /tmp/null c 1 3 2>&1 || echo "mknod /tmp/null: refused"
ls -d /tmp/demo'
python3 - "$WORK/bundle/config.json" "$ROOTFS" "$SOCK" "$WORKLOAD" <<'PY'
import json, sys
path, rootfs, sock, workload = sys.argv[1:]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", workload]
c["root"] = {"path": rootfs, "readonly": False}
c["hostname"] = "demo-container"
c["linux"]["seccomp"] = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "listenerPath": sock,
    "listenerMetadata": "run-demo",
    "syscalls": [{"names": ["mkdir", "mkdirat", "mknod", "mknodat", "openat"],
                  "action": "SCMP_ACT_NOTIFY"}],
}
json.dump(c, open(path, "w"), indent=2)
PY

echo "== starting the agent (built-in default policy)"
"$AGENT_BIN" --socket="$SOCK" --decision_log="$DECISIONS" 2>"$WORK/agent.log" &
AGENT_PID=$!
for _ in $(seq 100); do
  grep -q "listening on $SOCK" "$WORK/agent.log" 2>/dev/null && break
  kill -0 "$AGENT_PID" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "listening on $SOCK" "$WORK/agent.log"; then
  echo "run-demo: the agent did not start:" >&2
  cat "$WORK/agent.log" >&2
  exit 1
fi

echo "== running container $ID under runc"
set +e
timeout 60 runc --root "$WORK/state" run --bundle "$WORK/bundle" "$ID" >"$WORK/ctr.out" 2>&1
CTR_RC=$?
set -e
echo "-- the container printed (exit status $CTR_RC):"
sed 's/^/   | /' "$WORK/ctr.out"

# Let the agent flush the last decisions, then stop it cleanly.
sleep 0.3
kill -TERM "$AGENT_PID"
AGENT_RC=0
wait "$AGENT_PID" || AGENT_RC=$?
AGENT_PID=""

echo "-- the agent's decisions ($DECISIONS):"
python3 - "$DECISIONS" <<'PY'
import json, sys
rows = []
try:
    lines = open(sys.argv[1]).read().splitlines()
except FileNotFoundError:
    lines = []
for line in lines:
    if not line.strip():
        continue
    try:
        d = json.loads(line)
    except ValueError:
        rows.append(["?", "?", line[:60], "", "", "", ""])
        continue
    args = d.get("args") or {}
    path = args.get("path", "")
    lat = d.get("latency_ns")
    lat = f"{lat / 1000:.1f} us" if isinstance(lat, (int, float)) else ""
    rows.append([d.get("container", ""), d.get("syscall", ""), str(path), d.get("rule", ""),
                 d.get("action", ""), str(d.get("result", "")), lat])
head = ["container", "syscall", "path", "rule", "action", "result", "latency"]
w = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
fmt = "   " + "  ".join("{:<%d}" % x for x in w)
print(fmt.format(*head))
print(fmt.format(*["-" * x for x in w]))
for r in rows:
    print(fmt.format(*r))
print(f"   {len(rows)} decision(s)")
PY
echo "-- agent log:"
sed 's/^/   | /' "$WORK/agent.log"
if [[ $CTR_RC -ne 0 ]]; then
  echo "run-demo: the container failed (exit $CTR_RC)" >&2
  exit 1
fi
if [[ $AGENT_RC -ne 0 ]]; then
  echo "run-demo: the agent did not exit cleanly on SIGTERM (exit $AGENT_RC)" >&2
  exit 1
fi
echo "== done: agent stopped"
