#!/usr/bin/env bash
# Installs every Debian package seccomp-agent needs to build, run and test.
# Idempotent and quiet: packages already present are not fetched again.
set -euo pipefail

PACKAGES=(
  # build
  bazel-bootstrap build-essential pkg-config git
  # libraries
  libseccomp-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
  protobuf-compiler libabsl-dev libgtest-dev libgmock-dev nlohmann-json3-dev
  libyaml-cpp-dev libspdlog-dev libcpp-httplib-dev libsystemd-dev libre2-dev
  # fuzzing / sanitizers
  clang-14 libclang-rt-14-dev
  # formatting (scripts/checks.sh)
  clang-format
  # runtimes and test rootfs
  runc crun busybox-static umoci util-linux iproute2 procps jq curl python3-yaml systemd
  # real engines (integration:engines_e2e_test)
  podman containerd
  # kernel build and VM (python3-ply, python3-git: checkpatch's SPDX check)
  linux-source-6.12 qemu-system-x86 flex bison bc libelf-dev libssl-dev cpio
  xz-utils kmod rsync python3-ply python3-git
  # example python plugin, benchmark plots
  python3-grpcio python3-protobuf gnuplot-nox
  # plugin TLS tests (CA and certificates made in the test)
  openssl
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
