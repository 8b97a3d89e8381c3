#!/bin/sh
# install.sh into a temp dir: files land where asked, the hooks.d JSON is
# valid oci-hooks 1.0.0 pointing at the installed binary, the installed hook
# runs, and a second install is byte-identical.
set -eu
fail() { echo "FAIL: $*" >&2; exit 1; }
root="$TEST_SRCDIR/$TEST_WORKSPACE"
tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/install.XXXXXX")
sockdir=$(mktemp -d /tmp/sainst.XXXXXX)  # unix socket paths are short
trap 'rm -rf "$tmp" "$sockdir"' EXIT
bin="$root/oci-hook/seccomp-agent-hook"

# Usage errors.
if "$root/oci-hook/install.sh" --prefix /x 2>"$tmp/err"; then fail "no --binary accepted"; fi
grep -q -- "--binary is required" "$tmp/err" || fail "missing --binary message"
if "$root/oci-hook/install.sh" --binary "$bin" --prefix rel 2>"$tmp/err"; then fail "relative prefix accepted"; fi

"$root/oci-hook/install.sh" --binary "$bin" --destdir "$tmp/root" --prefix /opt/sa \
  --hooks-dir /usr/share/containers/oci/hooks.d --hooks-dir /etc/containers/oci/hooks.d \
  --config /etc/sa/hook.json >/dev/null
b="$tmp/root/opt/sa/libexec/seccomp-agent/seccomp-agent-hook"
[ -x "$b" ] || fail "binary not installed at $b"
for d in usr/share/containers/oci/hooks.d etc/containers/oci/hooks.d; do
  for s in precreate createruntime poststop; do
    f="$tmp/root/$d/seccomp-agent-$s.json"
    [ -f "$f" ] || fail "missing $f"
    python3 - "$f" "$s" <<'PY' || fail "bad hook file $f"
import json, sys
h = json.load(open(sys.argv[1]))
stage = {"precreate": "precreate", "createruntime": "createRuntime", "poststop": "poststop"}[sys.argv[2]]
assert h["version"] == "1.0.0", h
assert h["hook"]["path"] == "/opt/sa/libexec/seccomp-agent/seccomp-agent-hook", h
assert h["hook"]["args"] == ["seccomp-agent-hook", "--config=/etc/sa/hook.json", stage], h
assert h["stages"] == [stage], h
assert h["when"]["annotations"] == {"^seccomp-agent\\.io/policy$": ".*"}, h
assert set(h) == {"version", "hook", "when", "stages"}, h
PY
  done
done
cp -r "$tmp/root" "$tmp/first"
"$root/oci-hook/install.sh" --binary "$bin" --destdir "$tmp/root" --prefix /opt/sa \
  --hooks-dir /usr/share/containers/oci/hooks.d --hooks-dir /etc/containers/oci/hooks.d \
  --config /etc/sa/hook.json >/dev/null
diff -r "$tmp/first" "$tmp/root" || fail "second install differs"
[ -z "$(find "$tmp/root" -name '*.tmp')" ] || fail "temp files left"

# The installed binary works: precreate on the podman sample with the test
# policies (the agent socket is probed: point it at a real socket file).
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$sockdir/agent.sock"
cat > "$tmp/hook.json" <<JSON
{"agent_socket": "$sockdir/agent.sock", "policy_dir": "$root/oci-hook/testdata/policies"}
JSON
"$b" --config="$tmp/hook.json" precreate < "$root/oci-hook/testdata/podman.json" > "$tmp/out.json" 2>"$tmp/err" \
  || { cat "$tmp/err"; fail "installed hook failed"; }
python3 - "$tmp/out.json" "$sockdir/agent.sock" <<'PY' || fail "installed hook output wrong"
import json, sys
c = json.load(open(sys.argv[1]))
s = c["linux"]["seccomp"]
assert s["listenerPath"] == sys.argv[2], s.get("listenerPath")
assert s["listenerMetadata"] == "seccomp-agent.io/policy=demo"
PY
# Errors: non-zero exit, message on stderr, nothing on stdout.
if echo '{"broken' | "$b" --config="$tmp/hook.json" precreate > "$tmp/out2" 2>"$tmp/err"; then fail "invalid JSON accepted"; fi
[ ! -s "$tmp/out2" ] || fail "stdout not empty on error"
grep -q "seccomp-agent-hook: config.json: invalid JSON" "$tmp/err" || fail "no clear error: $(cat "$tmp/err")"
echo PASS
