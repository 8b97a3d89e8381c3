# Sourced by the scripts that need root (containers, seccomp listeners,
# QEMU): `source scripts/as-root.sh "$@"` at the top, after `cd` to the
# checkout. As root it does nothing; otherwise it runs the calling script
# again under sudo with the same arguments (a root shell on a fresh Debian
# machine has no sudo, and needs none), or says why it cannot.
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo --preserve-env=CI,SECCOMP_AGENT_TEST_OUT,SANITIZERS_OUT,SANITIZERS_CACHE,FUZZ_OUT \
      bash "$PWD/scripts/$(basename "$0")" "$@"
  fi
  echo "$(basename "$0") needs root (containers, seccomp listeners) and there is no sudo" >&2
  exit 2
fi
