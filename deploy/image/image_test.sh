#!/bin/bash
# End-to-end test of the OCI image: build it with umoci from the Bazel-built
# binaries, unpack it, run the agent FROM THE IMAGE under runc the way the
# DaemonSet runs it (host pid and network namespaces, the socket directory
# bind-mounted from the host, the DaemonSet's capabilities and nothing
# more), then run a separate busybox container under runc whose
# linux.seccomp.listenerPath points at that agent, and check:
#   * mkdir in /forbidden gets EPERM from the agent's policy, mkdir in /tmp
#     works (the agent decides, it does not break everything);
#   * `seccomp-agentctl list` on the host, through the bind-mounted admin
#     socket, shows the container with its pod annotations and metadata;
#   * the health check passes and /metrics counts the denied mkdir.
# Needs root, runc, umoci, jq, curl and busybox-static. Every step is bounded
# by `timeout`; everything is removed on exit.
set -euo pipefail

say() { echo "image_test: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

[[ $(id -u) == 0 ]] || { say "SKIP: needs root"; exit 0; }
for t in runc umoci jq curl; do
  command -v "$t" >/dev/null || fail "$t not installed"
done
BUSYBOX=$(command -v busybox || true)
[[ -n $BUSYBOX ]] || fail "busybox not installed (busybox-static)"

R=${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-seccomp_agent}
AGENT=$R/agent/seccomp-agent
CTL=$R/agent/ctl/seccomp-agentctl
BUILD=$R/deploy/image/build.sh
POLICY=$R/deploy/policy/default-policy.yaml
CAPS=$R/deploy/image/capabilities.txt

WORK=$(mktemp -d /tmp/sa-image-XXXXXX)
RUNC="runc --root $WORK/runc-root"
AGENT_ID=sa-image-agent-$$
BOX_ID=sa-image-box-$$
SOCKDIR=$WORK/run        # stands in for the host's /run/seccomp-agent
PORT=$((20000 + $$ % 20000))

cleanup() {
  set +e
  for id in "$BOX_ID" "$AGENT_ID"; do
    timeout 10 $RUNC kill "$id" KILL 2>/dev/null
    for _ in $(seq 50); do
      st=$($RUNC state "$id" 2>/dev/null | jq -r .status 2>/dev/null)
      [[ -z $st || $st == stopped ]] && break
      sleep 0.1
    done
    timeout 10 $RUNC delete --force "$id" 2>/dev/null
  done
  if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# 1. Build the image.
timeout 120 "$BUILD" "$WORK/image" "$AGENT" "$CTL" "$POLICY" >&2 || fail "build.sh"
[[ -f $WORK/image/index.json ]] || fail "no OCI layout"

# 2. Unpack it into a runc bundle.
timeout 120 umoci unpack --image "$WORK/image:latest" "$WORK/agent-bundle" >&2 || fail "umoci unpack"
[[ -x $WORK/agent-bundle/rootfs/usr/bin/seccomp-agent ]] || fail "agent missing from the image"
[[ -f $WORK/agent-bundle/rootfs/etc/seccomp-agent/policy.yaml ]] || fail "policy missing"

# 3. Adjust the generated config like the DaemonSet: hostPID (no pid
#    namespace: the pids runc sends must be the agent's pids), hostNetwork
#    (metrics on the node), the socket directory bind-mounted, the listed
#    capabilities only, read-only root.
mkdir -p "$SOCKDIR"
caps_json=$(grep -v '^#' "$CAPS" | grep . | jq -R . | jq -s .)
jq --arg sock "$SOCKDIR" --argjson caps "$caps_json" --arg port "$PORT" '
  .process.terminal = false
  | .process.args = ["/usr/bin/seccomp-agent", "--policy=/etc/seccomp-agent/policy.yaml",
                     "--metrics_address=127.0.0.1:" + $port, "--log_level=info"]
  | .process.capabilities = {bounding: $caps, effective: $caps, permitted: $caps,
                             inheritable: [], ambient: []}
  | .process.noNewPrivileges = true
  | .root.readonly = true
  | .linux.namespaces |= map(select(.type != "pid" and .type != "network"))
  | .mounts += [{destination: "/run/seccomp-agent", type: "bind", source: $sock,
                 options: ["rbind", "rw"]}]
  | del(.linux.uidMappings) | del(.linux.gidMappings)
' "$WORK/agent-bundle/config.json" > "$WORK/config.tmp"
mv "$WORK/config.tmp" "$WORK/agent-bundle/config.json"
jq -e '.linux.namespaces | map(.type) | index("pid") == null' "$WORK/agent-bundle/config.json" >/dev/null \
  || fail "pid namespace still there"

# 4. Run the agent from the image.
( cd "$WORK/agent-bundle" && timeout 10 $RUNC run -d --bundle . "$AGENT_ID" \
    > "$WORK/agent.log" 2>&1 ) || { cat "$WORK/agent.log" >&2; fail "runc run agent"; }
for _ in $(seq 100); do
  [[ -S $SOCKDIR/agent.sock && -S $SOCKDIR/admin.sock ]] && break
  sleep 0.1
done
[[ -S $SOCKDIR/agent.sock ]] || { cat "$WORK/agent.log" >&2; fail "agent socket never appeared"; }
[[ -S $SOCKDIR/admin.sock ]] || { cat "$WORK/agent.log" >&2; fail "admin socket never appeared"; }
[[ $(stat -c %a "$SOCKDIR/admin.sock") == 600 ]] || fail "admin socket is not 0600"
timeout 10 "$CTL" --socket="$SOCKDIR/admin.sock" --timeout=5s health >&2 || fail "health"

# 5. A busybox workload whose seccomp profile hands mkdir to the agent.
mkdir -p "$WORK/box/rootfs"/{bin,proc,dev,sys,tmp}
cp "$BUSYBOX" "$WORK/box/rootfs/bin/busybox"
for a in sh mkdir echo sleep cat; do ln -s busybox "$WORK/box/rootfs/bin/$a"; done
( cd "$WORK/box" && runc spec )
jq --arg sock "$SOCKDIR/agent.sock" '
  .process.terminal = false
  | .root.readonly = false
  | .process.args = ["/bin/sh", "-c",
      "mkdir /tmp/allowed && echo ALLOWED_OK; mkdir /forbidden/x || echo DENIED_RC=$?; sleep 60"]
  | .annotations = {"io.kubernetes.pod.namespace": "shop",
                    "io.kubernetes.pod.name": "cart-7d9f",
                    "io.kubernetes.container.name": "cart"}
  | .linux.seccomp = {defaultAction: "SCMP_ACT_ALLOW",
                      listenerPath: $sock,
                      listenerMetadata: "profile=image-test",
                      architectures: ["SCMP_ARCH_X86_64"],
                      syscalls: [{names: ["mkdir", "mkdirat"], action: "SCMP_ACT_NOTIFY"}]}
' "$WORK/box/config.json" > "$WORK/box.tmp"
mv "$WORK/box.tmp" "$WORK/box/config.json"
( cd "$WORK/box" && timeout 10 $RUNC run -d --bundle . "$BOX_ID" > "$WORK/box.log" 2>&1 ) \
  || { cat "$WORK/box.log" "$WORK/agent.log" >&2; fail "runc run busybox"; }

for _ in $(seq 100); do
  grep -q DENIED_RC "$WORK/box.log" && break
  sleep 0.1
done
say "busybox output:"; cat "$WORK/box.log" >&2
grep -q ALLOWED_OK "$WORK/box.log" || fail "mkdir /tmp/allowed did not succeed"
grep -q "Operation not permitted" "$WORK/box.log" || fail "mkdir /forbidden/x did not see EPERM"

# 6. The admin CLI on the host, through the bind-mounted socket.
list_json=$(timeout 10 "$CTL" --socket="$SOCKDIR/admin.sock" --timeout=5s --json list) || fail "ctl list"
echo "$list_json" | jq . >&2
box_pid=$($RUNC state "$BOX_ID" | jq -r .pid)
echo "$list_json" | jq -e --arg id "$BOX_ID" --argjson pid "$box_pid" '
  .containers | map(select(.id == $id)) | length == 1 and
  (.[0].init_pid == $pid) and
  (.[0].pod_namespace == "shop") and (.[0].pod_name == "cart-7d9f") and
  (.[0].container_name == "cart") and
  (.[0].listener_metadata == "profile=image-test") and
  (.[0].runtime == "runc") and
  ((.[0].counters.denied | tonumber) >= 1) and
  ((.[0].counters.allowed | tonumber) >= 1)' >/dev/null \
  || fail "list does not show the busybox container with its pod identity"
timeout 10 "$CTL" --socket="$SOCKDIR/admin.sock" --timeout=5s list >&2 || fail "ctl list (table)"
timeout 10 "$CTL" --socket="$SOCKDIR/admin.sock" --timeout=5s list | grep -q "shop  *cart-7d9f  *cart  *profile=image-test" \
  || fail "table does not show the pod columns"

# 7. Metrics from the agent in the image.
metrics=$(timeout 10 curl -fsS "http://127.0.0.1:$PORT/metrics") || fail "GET /metrics"
echo "$metrics" | grep -E "^seccomp_agent_notifications_total\{container_id=\"$BOX_ID\",namespace=\"shop\",pod=\"cart-7d9f\",container=\"cart\",syscall=\"mkdir\",action=\"deny\"\} [1-9]" >&2 \
  || { echo "$metrics" | grep seccomp_agent_notifications >&2; fail "metrics miss the denied mkdir"; }
echo "$metrics" | grep -q '^seccomp_agent_active_containers 1$' || fail "active containers != 1"
timeout 10 curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || fail "/healthz"

say "PASS"
