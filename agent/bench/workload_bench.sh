#!/usr/bin/env bash
# A workload a user recognises, through runc, in one run (issue 19 item 5):
#   untar  busybox tar extracts a 5,000-file archive (50 directories) to
#          /tmp/out in the container (a tmpfs: the host's disk and other
#          load's I/O stay out of it): openat + mkdirat per entry;
#   http   busybox httpd binds 0.0.0.0:80 (rewrite_bind moves it to
#          127.0.0.1:8080 under the policy), then busybox wget fetches a
#          page 200 times (httpd's openat calls trap too).
# Each is run in three modes, interleaved, --rounds times (median reported):
#   none      no seccomp at all
#   continue  the same NOTIFY filter (openat, mkdir, mkdirat, bind), served by
#             the agent with no rule (CONTINUE, nothing read from the task):
#             the cost of the round trip alone
#   policy    the same filter under a path policy (every openat/mkdir path
#             read, resolved in the container's root, glob-matched) plus
#             rewrite_bind for port 80 (emulated bind on this kernel)
# Times are taken inside the container from /proc/uptime (10 ms ticks), so
# container creation is not counted. Needs root, runc, busybox-static.
#   agent/bench/workload_bench.sh [--rounds=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/busybox_rootfs.sh
ROOT=$(pwd)
ROUNDS=3
for a in "$@"; do
  case $a in
    --rounds=*) ROUNDS=${a#--rounds=} ;;
    *) echo "usage: $0 [--rounds=N]" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "workload_bench: needs root (runc)" >&2; exit 1; }
command -v runc >/dev/null || { echo "workload_bench: runc missing" >&2; exit 1; }
[[ -x /usr/bin/busybox ]] || { echo "workload_bench: busybox-static missing" >&2; exit 1; }

bazel build -c opt //agent:seccomp-agent >/dev/null 2>&1 ||
  { echo "workload_bench: build failed" >&2; exit 1; }
AGENT_BIN="$(bazel info -c opt bazel-bin 2>/dev/null)/agent/seccomp-agent"

WORK=$(mktemp -d /tmp/seccomp-workload-bench.XXXXXX)
AGENT_PID=""
CID=""
cleanup() {
  [[ -n $CID ]] && runc --root "$WORK/state" delete -f "$CID" >/dev/null 2>&1 || true
  [[ -n $AGENT_PID ]] && kill -KILL "$AGENT_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Rootfs: busybox, the archive, a page to serve.
ROOTFS="$WORK/rootfs"
busybox_rootfs "$ROOTFS" data www
mkdir -p "$WORK/state" "$WORK/src"
echo "<html>seccomp-agent workload bench</html>" >"$ROOTFS/www/index.html"
for d in $(seq 0 49); do
  mkdir "$WORK/src/d$d"
  for f in $(seq 0 99); do echo "file $d/$f" >"$WORK/src/d$d/f$f"; done
done
tar --format=ustar -C "$WORK/src" -cf "$ROOTFS/data/files.tar" .

# The container's script: prints "untar SECONDS" and "http SECONDS".
read -r -d '' SCRIPT <<'SH' || true
t() { cut -d' ' -f1 /proc/uptime; }
s=$(t); tar -xf /data/files.tar -C /tmp/out; e=$(t)
[ "$(find /tmp/out -type f | wc -l)" = 5000 ] || { echo "untar: wrong file count"; exit 3; }
echo "untar $(echo "$e $s" | awk '{printf "%.2f", $1 - $2}')"
httpd -p 0.0.0.0:80 -h /www
sleep 0.2
s=$(t)
i=0
while [ $i -lt 200 ]; do
  wget -q -O /dev/null "http://127.0.0.1:$PORT/index.html" || { echo "http: fetch failed"; exit 4; }
  i=$((i + 1))
done
e=$(t)
echo "http $(echo "$e $s" | awk '{printf "%.2f", $1 - $2}')"
SH

POLICY_CONTINUE='version: 1
default_action: {allow: {}}
'
POLICY_PATHS='version: 1
default_action: {allow: {}}
injection: {mode: auto}
rules:
  - name: no-proc-mkdir
    match: {syscalls: [mkdir, mkdirat], args: {path: "/proc/**"}}
    action: {deny: {errno: EACCES}}
  - name: untar-target
    match: {syscalls: [openat, mkdir, mkdirat], args: {path: "/tmp/out/**"}}
    action: {allow: {}}
  - name: no-shadow
    match: {syscalls: [openat], args: {path: "/etc/shadow"}}
    action: {deny: {errno: EACCES}}
  - name: port-80-to-8080
    match: {syscalls: [bind], args: {sockaddr: {family: AF_INET, port: 80}}}
    action: {rewrite_bind: {map: {"0.0.0.0:80": "127.0.0.1:8080"}}}
'

# bundle MODE: writes $WORK/MODE/config.json.
bundle() {
  local mode=$1 port=80
  [[ $mode == policy ]] && port=8080
  mkdir -p "$WORK/$mode"
  runc spec --bundle "$WORK/$mode"
  python3 - "$WORK/$mode/config.json" "$ROOTFS" "$WORK/$mode.sock" "$SCRIPT" "$mode" "$port" <<'PY'
import json, sys
path, rootfs, sock, script, mode, port = sys.argv[1:]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", script]
c["process"]["env"].append("PORT=" + port)
c["root"] = {"path": rootfs, "readonly": False}
c["mounts"].append({"destination": "/tmp/out", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "size=256m"]})
if mode != "none":
    c["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "listenerPath": sock,
        "syscalls": [{"names": ["openat", "mkdir", "mkdirat", "bind"],
                      "action": "SCMP_ACT_NOTIFY"}],
    }
json.dump(c, open(path, "w"), indent=2)
PY
}

# start_agent MODE POLICY
start_agent() {
  printf '%s' "$2" >"$WORK/$1.yaml"
  "$AGENT_BIN" --socket="$WORK/$1.sock" --policy="$WORK/$1.yaml" 2>"$WORK/$1.log" &
  AGENT_PID=$!
  for _ in $(seq 100); do
    grep -q "listening on $WORK/$1.sock" "$WORK/$1.log" 2>/dev/null && return 0
    kill -0 "$AGENT_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "workload_bench: the agent did not start:" >&2
  cat "$WORK/$1.log" >&2
  exit 1
}

stop_agent() {
  kill -TERM "$AGENT_PID"
  wait "$AGENT_PID" || true
  AGENT_PID=""
}

# run MODE ROUND: one container; appends "MODE untar S" and "MODE http S".
run() {
  local mode=$1
  CID="workload-bench-$$-$mode-$2"
  if ! timeout 600 runc --root "$WORK/state" run --bundle "$WORK/$mode" "$CID" \
       >"$WORK/out" 2>&1; then
    echo "workload_bench: $mode container failed:" >&2
    cat "$WORK/out" >&2
    [[ -f $WORK/$mode.log ]] && tail -20 "$WORK/$mode.log" >&2
    exit 1
  fi
  runc --root "$WORK/state" delete -f "$CID" >/dev/null 2>&1 || true
  CID=""
  grep -E '^(untar|http) ' "$WORK/out" | sed "s/^/$mode /" >>"$WORK/times"
}

for m in none continue policy; do bundle "$m"; done
echo "load before: $(cat /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  run none "$r"
  start_agent continue "$POLICY_CONTINUE"
  run continue "$r"
  stop_agent
  start_agent policy "$POLICY_PATHS"
  run policy "$r"
  stop_agent
done
echo "load after:  $(cat /proc/loadavg)"
grep -q 'rewrite_bind\|port-80-to-8080' "$WORK/policy.log" 2>/dev/null || true

# Medians and ratios.
python3 - "$WORK/times" "$ROUNDS" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for mode in ("none", "continue", "policy"):
    for w in ("untar", "http"):
        v = [float(r[2]) for r in rows if r[0] == mode and r[1] == w]
        med[(mode, w)] = statistics.median(v)
print(f"median of {sys.argv[2]} rounds, seconds (container's /proc/uptime, 10 ms ticks)")
print(f"| workload | no seccomp | CONTINUE-only | path policy | policy/none | policy/CONTINUE |")
print(f"| --- | ---: | ---: | ---: | ---: | ---: |")
for w, what in (("untar", "untar 5,000 files"), ("http", "httpd via rewrite_bind, 200 GETs")):
    n, c, p = med[("none", w)], med[("continue", w)], med[("policy", w)]
    r1 = f"{p / n:.2f}x" if n > 0 else "n/a"
    r2 = f"{p / c:.2f}x" if c > 0 else "n/a"
    print(f"| {what} | {n:.2f} | {c:.2f} | {p:.2f} | {r1} | {r2} |")
for w in ("untar", "http"):
    n, c, p = med[("none", w)], med[("continue", w)], med[("policy", w)]
    if c > 0:
        print(f"{w} policy/continue ratio: {p / c:.2f}")
PY
