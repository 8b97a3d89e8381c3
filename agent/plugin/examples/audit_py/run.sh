#!/bin/sh
# Runs audit_plugin.py with Debian's python3 (python3-grpcio) and the Python
# code Bazel generated from proto/. Works under `bazel run` and as a data
# dependency of a test.
set -eu
pkg=seccomp_agent/agent/plugin/examples/audit_py
if [ -d "$0.runfiles" ]; then
  base="$0.runfiles/$pkg"
elif [ -n "${RUNFILES_DIR:-}" ]; then
  base="$RUNFILES_DIR/$pkg"
elif [ -n "${TEST_SRCDIR:-}" ]; then
  base="$TEST_SRCDIR/$pkg"
else
  base="$(dirname "$0")"
fi
exec "${PYTHON:-/usr/bin/python3}" "$base/audit_plugin.py" --gen_dir "$base/gen" "$@"
