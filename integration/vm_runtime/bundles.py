#!/usr/bin/env python3
"""Writes the OCI config.json of every integration/vm_runtime case.

Usage: bundles.py SPEC_JSON OUT_DIR

SPEC_JSON is `runc spec` output (runc 1.1.5's default bundle: pid, net, ipc,
uts and mount namespaces, the proc/devpts/mqueue/sysfs/cgroup mounts,
devices denied). Each case gets OUT_DIR/<case>.json: that spec with
`terminal: false`, the relative root `rootfs`, `/bin/sh /case.sh` as the
process (the guest writes the script into each rootfs), and a
linux.seccomp that traps the case's syscalls to an agent socket. The same
file serves runc and crun (the guest copies it into one bundle per runtime).
"""
import json
import os
import sys

AGENT = "/run/sa/agent.sock"
AGENT_EMULATE = "/run/sa-emu/agent.sock"

# case -> (listener socket or None, syscalls trapped with SCMP_ACT_NOTIFY,
#          annotations)
CASES = {
    "redirect": (AGENT, ["openat"], {}),
    "bind": (AGENT, ["bind"], {}),
    "write": (AGENT, ["write"], {}),
    "denyspoof": (AGENT, ["mkdir", "mkdirat", "openat"], {}),
    "race": (AGENT, ["openat"], {}),
    "dirrace": (AGENT, ["openat"], {}),
    "restart": (AGENT, ["mkdir", "mkdirat", "openat"], {}),
    "bench-kernel": (AGENT, ["openat"], {}),
    "bench-emulate": (AGENT_EMULATE, ["openat"], {}),
    "bench-none": (None, [], {}),
    # No profile: seccomp-agent-hook precreate adds it in the guest.
    "hook": (None, [], {"seccomp-agent.io/policy": "vmrt"}),
}


def bundle(spec, socket, syscalls, annotations):
    c = json.loads(json.dumps(spec))
    c["process"]["terminal"] = False
    c["process"]["args"] = ["/bin/sh", "/case.sh"]
    c["root"] = {"path": "rootfs", "readonly": False}
    c["hostname"] = "vmrt"
    if annotations:
        c.setdefault("annotations", {}).update(annotations)
    if socket is not None:
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "listenerPath": socket,
            "syscalls": [{"names": syscalls, "action": "SCMP_ACT_NOTIFY"}],
        }
    return c


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    os.makedirs(sys.argv[2], exist_ok=True)
    for name, (socket, syscalls, annotations) in CASES.items():
        with open(os.path.join(sys.argv[2], name + ".json"), "w") as f:
            json.dump(bundle(spec, socket, syscalls, annotations), f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
