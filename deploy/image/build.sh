#!/bin/bash
# Builds the seccomp-agent OCI image (an OCI image layout, tag "latest") with
# umoci from Bazel-built binaries: /usr/bin/seccomp-agent,
# /usr/bin/seccomp-agentctl, every shared library they load (found with
# ldd, copied at the same paths, plus the dynamic loader), and the default
# policy at /etc/seccomp-agent/policy.yaml. No shell, no package manager.
#
#   deploy/image/build.sh OUT_LAYOUT_DIR [AGENT_BIN CTL_BIN POLICY]
#
# Defaults: bazel-bin/agent/seccomp-agent, bazel-bin/agent/ctl/seccomp-agentctl
# and deploy/policy/default-policy.yaml (run from the workspace root after
# `bazel build //agent:seccomp-agent //agent/ctl:seccomp-agentctl`).
# Push it with e.g. `skopeo copy oci:OUT:latest docker://REGISTRY/seccomp-agent:TAG`.
set -euo pipefail

out=${1:?usage: build.sh OUT_LAYOUT_DIR [AGENT_BIN CTL_BIN POLICY]}
agent=${2:-bazel-bin/agent/seccomp-agent}
ctl=${3:-bazel-bin/agent/ctl/seccomp-agentctl}
policy=${4:-deploy/policy/default-policy.yaml}

for f in "$agent" "$ctl" "$policy"; do
  [[ -f $f ]] || { echo "build.sh: $f not found" >&2; exit 1; }
done
command -v umoci >/dev/null || { echo "build.sh: umoci not installed (apt-get install umoci)" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -D -m 0755 "$agent" "$stage/usr/bin/seccomp-agent"
install -D -m 0755 "$ctl" "$stage/usr/bin/seccomp-agentctl"
install -D -m 0644 "$policy" "$stage/etc/seccomp-agent/policy.yaml"

# Shared libraries: every absolute path ldd prints (including the loader),
# resolved through symlinks, copied at the path the binary asks for.
copy_libs() {
  local bin=$1 lib
  while read -r lib; do
    [[ -n $lib && -e $lib ]] || continue
    if [[ ! -e $stage$lib ]]; then
      install -D -m 0755 "$(readlink -f "$lib")" "$stage$lib"
    fi
  done < <(ldd "$bin" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }')
}
copy_libs "$agent"
copy_libs "$ctl"
# Debian's loader path is /lib64/ld-linux-x86-64.so.2 -> usr/lib/...: make
# sure the symlinked directories exist the way the binaries expect them.
mkdir -p "$stage/run/seccomp-agent" "$stage/tmp" "$stage/proc" "$stage/dev" "$stage/sys"
chmod 1777 "$stage/tmp"
# Name-service files for getpwuid() and friends.
mkdir -p "$stage/etc"
echo 'root:x:0:0:root:/:/usr/sbin/nologin' > "$stage/etc/passwd"
echo 'root:x:0:' > "$stage/etc/group"

rm -rf "$out"
umoci init --layout "$out"
umoci new --image "$out:latest"
umoci insert --image "$out:latest" "$stage" /
umoci config --image "$out:latest" \
  --config.entrypoint /usr/bin/seccomp-agent \
  --config.cmd --policy=/etc/seccomp-agent/policy.yaml \
  --config.workingdir / \
  --config.user 0:0 \
  --config.volume /run/seccomp-agent \
  --config.label org.opencontainers.image.title=seccomp-agent \
  --config.label org.opencontainers.image.description="seccomp user-notification agent for runc/crun" \
  --author seccomp-agent
umoci gc --layout "$out"
echo "image: $out:latest ($(du -sh "$out" | cut -f1))"
