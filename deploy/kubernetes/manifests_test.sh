#!/bin/bash
# Static checks of the Kubernetes manifests: they parse, the profile in the
# ConfigMap is the one in seccomp-profile.json and names the agent's socket,
# the DaemonSet's capabilities are exactly the set the image test runs with
# (deploy/image/capabilities.txt), and it is not privileged; the agent and
# the OCI hook share one policy_dir setting (hook.json) in the DaemonSet and
# in the systemd unit; the metrics endpoint listens on the pod IP only and a
# NetworkPolicy admits only Prometheus to it; the plugin Deployment of
# plugin-mtls.yaml uses flags the C++ example plugin has, on the files of
# its certificate's secret.
set -euo pipefail
D=${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-seccomp_agent}/deploy
R=${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-seccomp_agent}
PLUGIN=$R/agent/plugin/examples/redirect_by_label/redirect_by_label
exec /usr/bin/python3 - "$D" "$PLUGIN" <<'PY'
import json, subprocess, sys, yaml
d = sys.argv[1]
k = d + "/kubernetes/"
for f in ["namespace.yaml", "configmap.yaml", "daemonset.yaml", "example-pod.yaml",
          "networkpolicy.yaml"]:
    docs = list(yaml.safe_load_all(open(k + f)))
    assert docs and all("kind" in x for x in docs), f
cm = yaml.safe_load(open(k + "configmap.yaml"))
prof = json.loads(cm["data"]["notify-mkdir.json"])
assert prof == json.load(open(k + "seccomp-profile.json")), "ConfigMap profile != seccomp-profile.json"
assert prof["listenerPath"] == "/run/seccomp-agent/agent.sock", prof
assert any(s["action"] == "SCMP_ACT_NOTIFY" for s in prof["syscalls"]), prof
yaml.safe_load(cm["data"]["policy.yaml"])
# One setting: the hook's config names the policy directory the agent reads
# (--hook_config), and the named policies are mounted there.
hook = json.loads(cm["data"]["hook.json"])
assert hook["policy_dir"] == "/etc/seccomp-agent/policies", hook
assert prof["listenerMetadata"].startswith("seccomp-agent.io/policy="), prof
yaml.safe_load(cm["data"]["strict.yaml"])
ds = yaml.safe_load(open(k + "daemonset.yaml"))
spec = ds["spec"]["template"]["spec"]
assert spec["hostPID"] is True
assert not spec.get("hostNetwork", False)
assert spec["automountServiceAccountToken"] is False
agent = spec["containers"][0]
sc = agent["securityContext"]
assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
assert sc["capabilities"]["drop"] == ["ALL"]
tested = [l.strip()[4:] for l in open(d + "/image/capabilities.txt") if l.startswith("CAP_")]
assert sc["capabilities"]["add"] == tested, (sc["capabilities"]["add"], tested)
assert "SYS_ADMIN" not in tested
mounts = {m["mountPath"] for m in agent["volumeMounts"]}
assert "/run/seccomp-agent" in mounts
assert "--hook_config=/etc/seccomp-agent/hook.json" in agent["args"], agent["args"]
assert not any(a.startswith("--policy_dir") for a in agent["args"]), agent["args"]
vol = [v for v in spec["volumes"] if v["name"] == "config"][0]
paths = {i["path"] for i in vol["configMap"]["items"]}
assert "hook.json" in paths and "policies/strict.yaml" in paths, paths
assert "/etc/seccomp-agent" in mounts
# Metrics: bound to the pod IP (never 0.0.0.0), one NetworkPolicy that selects
# the agent's pods and admits only the metrics port from pods that match both
# a namespace and a pod selector (an empty "from" would admit every pod).
args = agent["args"]
maddr = [a for a in args if a.startswith("--metrics_address=")]
assert maddr == ["--metrics_address=$(POD_IP):9464"], maddr
env = {e["name"]: e for e in agent["env"]}
assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
assert [p["containerPort"] for p in agent["ports"]] == [9464]
np = yaml.safe_load(open(k + "networkpolicy.yaml"))
assert np["kind"] == "NetworkPolicy" and np["metadata"]["namespace"] == ds["metadata"]["namespace"]
labels = ds["spec"]["template"]["metadata"]["labels"]
assert all(labels.get(key) == v for key, v in np["spec"]["podSelector"]["matchLabels"].items())
assert np["spec"]["policyTypes"] == ["Ingress"]
(rule,) = np["spec"]["ingress"]
assert rule["ports"] == [{"protocol": "TCP", "port": 9464}], rule
assert rule["from"], "an empty from admits every pod"
for peer in rule["from"]:
    assert peer["namespaceSelector"]["matchLabels"] and peer["podSelector"]["matchLabels"], peer
pod = yaml.safe_load(open(k + "example-pod.yaml"))
lp = pod["spec"]["securityContext"]["seccompProfile"]
assert lp["type"] == "Localhost" and lp["localhostProfile"] == "seccomp-agent/notify-mkdir.json"
# The systemd unit: the same one setting, the hook config's policy_dir.
unit = open(d + "/systemd/seccomp-agent.service").read()
assert "--hook_config=/etc/seccomp-agent/hook.json" in unit and "--policy_dir" not in unit
assert json.load(open(d + "/policy/hook.json"))["policy_dir"] == hook["policy_dir"]
# The plugin over mTLS: its policy names the files the DaemonSet mounts
# from the client certificate's secret, and that mount is optional.
docs = list(yaml.safe_load_all(open(k + "plugin-mtls.yaml")))
by_kind = {}
for x in docs:
    by_kind.setdefault(x["kind"], []).append(x)
pol = yaml.safe_load(by_kind["ConfigMap"][0]["data"]["policy.yaml"])
tls = pol["plugins"][0]["tls"]
assert not pol["plugins"][0].get("insecure", False)
client = [c for c in by_kind["Certificate"] if c["spec"].get("usages") == ["client auth"]][0]
vols = {v["name"]: v for v in spec["volumes"]}
sec = vols["plugin-client-tls"]["secret"]
assert sec["secretName"] == client["spec"]["secretName"] and sec["optional"] is True, sec
mount = [m for m in agent["volumeMounts"] if m["name"] == "plugin-client-tls"][0]["mountPath"]
for f in ("ca_file", "cert_file", "key_file"):
    assert tls[f].startswith(mount + "/"), (f, tls[f], mount)
svc = by_kind["Service"][0]
host, port = pol["plugins"][0]["address"].rsplit(":", 1)
assert host.startswith(svc["metadata"]["name"] + "." + svc["metadata"]["namespace"] + ".svc"), host
assert int(port) == svc["spec"]["ports"][0]["port"]
server = [c for c in by_kind["Certificate"] if c["spec"].get("usages") == ["server auth"]][0]
assert host in server["spec"]["dnsNames"], (host, server["spec"]["dnsNames"])
# The plugin Deployment runs the C++ example with flags it has, and its TLS
# files are the keys of the server certificate's secret, where it is mounted.
pod = by_kind["Deployment"][0]["spec"]["template"]["spec"]
plug = pod["containers"][0]
helpfull = subprocess.run([sys.argv[2], "--helpfull"], capture_output=True, text=True)
known = helpfull.stdout + helpfull.stderr
args = dict(a.split("=", 1) for a in plug["args"])
for flag in args:
    assert "    " + flag + " (" in known, (flag, "not a flag of redirect_by_label")
smount = [m for m in plug["volumeMounts"]][0]
svol = {v["name"]: v for v in pod["volumes"]}[smount["name"]]
assert svol["secret"]["secretName"] == server["spec"]["secretName"], svol
for flag, key in (("--tls_cert", "tls.crt"), ("--tls_key", "tls.key"),
                  ("--tls_client_ca", "ca.crt")):
    assert args[flag] == smount["mountPath"] + "/" + key, (flag, args[flag])
print("manifests_test: PASS")
PY
