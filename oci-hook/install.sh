#!/bin/sh
# Installs seccomp-agent-hook and its oci-hooks 1.0.0 files.
#
#   install.sh --binary PATH [--prefix /usr/local] [--hooks-dir DIR]...
#              [--config /etc/seccomp-agent/hook.json] [--destdir DIR]
#
#   --binary     the built hook (bazel-bin/oci-hook/seccomp-agent-hook)
#   --prefix     the binary goes to PREFIX/libexec/seccomp-agent/
#   --hooks-dir  where the JSON files go; repeat it for several engines.
#                Default: /usr/share/containers/oci/hooks.d (podman and
#                CRI-O both read it; CRI-O also /etc/containers/oci/hooks.d).
#   --config     the hook config path written into the hook's args
#   --destdir    staging root prepended to every destination (packaging,
#                tests); paths written into the JSON files exclude it.
# Idempotent: running it again overwrites the same files.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
binary=""
prefix=/usr/local
config=/etc/seccomp-agent/hook.json
destdir=""
hooks_dirs=""

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?}; shift 2 ;;
    --binary=*) binary=${1#*=}; shift ;;
    --prefix) prefix=${2:?}; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --hooks-dir) hooks_dirs="$hooks_dirs ${2:?}"; shift 2 ;;
    --hooks-dir=*) hooks_dirs="$hooks_dirs ${1#*=}"; shift ;;
    --config) config=${2:?}; shift 2 ;;
    --config=*) config=${1#*=}; shift ;;
    --destdir) destdir=${2:?}; shift 2 ;;
    --destdir=*) destdir=${1#*=}; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$binary" ] || die "--binary is required"
[ -x "$binary" ] || die "$binary is not an executable file"
case "$prefix" in /*) ;; *) die "--prefix must be absolute" ;; esac
case "$config" in /*) ;; *) die "--config must be absolute" ;; esac
[ -n "$hooks_dirs" ] || hooks_dirs=/usr/share/containers/oci/hooks.d

bindir="$prefix/libexec/seccomp-agent"
install -d -m 0755 "$destdir$bindir"
install -m 0755 "$binary" "$destdir$bindir/seccomp-agent-hook"
for dir in $hooks_dirs; do
  case "$dir" in /*) ;; *) die "--hooks-dir must be absolute: $dir" ;; esac
  install -d -m 0755 "$destdir$dir"
  for f in "$here"/hooks.d/*.json; do
    sed -e "s|@BINDIR@|$bindir|g" -e "s|@CONFIG@|$config|g" "$f" > "$destdir$dir/$(basename "$f").tmp"
    chmod 0644 "$destdir$dir/$(basename "$f").tmp"
    mv -f "$destdir$dir/$(basename "$f").tmp" "$destdir$dir/$(basename "$f")"
  done
done
echo "installed $destdir$bindir/seccomp-agent-hook; hooks in:$hooks_dirs"
