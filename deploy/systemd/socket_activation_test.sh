#!/bin/bash
# Socket activation and sd_notify, for real: systemd-socket-activate creates
# the listening handoff socket and starts the agent with LISTEN_FDS=1 (as
# seccomp-agent.socket does); a datagram NOTIFY_SOCKET must receive
# READY=1; a connection on the activated socket must reach the agent's
# handoff server (counted in `seccomp-agentctl stats`); the admin socket
# is created next to --socket.
set -euo pipefail
say() { echo "socket_activation_test: $*" >&2; }
fail() { say "FAIL: $*"; [[ -f ${WORK:-/nonexistent}/agent.log ]] && cat "$WORK/agent.log" >&2; exit 1; }
command -v systemd-socket-activate >/dev/null || { say "SKIP: no systemd-socket-activate"; exit 0; }
PY=/usr/bin/python3
[[ -x $PY ]] || fail "python3 needed"

R=${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-seccomp_agent}
AGENT=$R/agent/seccomp-agent
CTL=$R/agent/ctl/seccomp-agentctl
WORK=$(mktemp -d /tmp/sa-sock-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The NOTIFY_SOCKET receiver: prints every datagram on its own line.
$PY -u -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    print(s.recv(4096).decode().replace("\n", " "), flush=True)
' "$WORK/notify.sock" > "$WORK/notify.log" &
pids+=($!)
for _ in $(seq 50); do grep -q bound "$WORK/notify.log" 2>/dev/null && break; sleep 0.1; done

systemd-socket-activate -l "$WORK/agent.sock" -E NOTIFY_SOCKET="$WORK/notify.sock" \
  "$AGENT" --socket="$WORK/agent.sock" --log_level=info > "$WORK/agent.log" 2>&1 &
pids+=($!)

# systemd-socket-activate starts the agent on the first connection: wake it.
$PY -c '
import socket, sys, time
for _ in range(50):
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.connect(sys.argv[1]); break
    except OSError: time.sleep(0.1)
c.sendall(b"this is not json]"); time.sleep(0.5); c.close()
' "$WORK/agent.sock"

for _ in $(seq 100); do grep -q "READY=1" "$WORK/notify.log" && break; sleep 0.1; done
grep -q "READY=1" "$WORK/notify.log" || fail "no READY=1 on NOTIFY_SOCKET"
grep -q "socket-activated handoff socket (fd 3)" "$WORK/agent.log" || fail "agent did not adopt fd 3"
[[ -S $WORK/admin.sock ]] || fail "no admin socket next to --socket"
stats=$(timeout 10 "$CTL" --socket="$WORK/admin.sock" --timeout=5s --json stats) || fail "ctl stats"
echo "$stats" >&2
echo "$stats" | $PY -c '
import json, sys
s = json.load(sys.stdin)["handoff"]
assert int(s["connections"]) >= 1, s
assert int(s["rejected"]["malformed_json"]) >= 1, s
' || fail "the activated socket did not reach the handoff server"
say PASS
