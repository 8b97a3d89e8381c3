#!/usr/bin/env bash
# Build the project's VM kernel: Debian's linux-source-6.1 plus the series
# in kernel/patches/, configured from tinyconfig and kernel/config/*.config.
#
# Usage: kernel/build.sh [lean|debug]      (default: lean)
#
# The last line of stdout is the path of the bzImage; everything else goes
# to stderr or to the build log. Next to the bzImage, in the same folder:
# config (the final .config), headers/ (headers_install output, for
# building userspace against the new uapi), selftests/ (the selftest source
# with the kselftest headers it includes) and build.log.
#
# Caching (root: $KERNEL_CACHE_DIR, default /var/cache/seccomp-agent/kernel):
#   <flavor>-<hash>/   finished image; <hash> covers the series, the
#                      fragments, this script and the source package. A hit
#                      returns at once, with no build.
#   tree-<flavor>/     extracted sources (src/) and kbuild output (build/),
#                      kept at a fixed path so an edited series rebuilds
#                      incrementally: only files whose patched content
#                      changes are rewritten.
#
# Environment: KERNEL_JOBS (default: number of CPUs), KERNEL_CACHE_DIR.
set -euo pipefail

flavor="${1:-lean}"
case "$flavor" in
lean | debug) ;;
*)
	echo "usage: $0 [lean|debug]" >&2
	exit 2
	;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KERNEL_CACHE_DIR:-/var/cache/seccomp-agent/kernel}"
jobs="${KERNEL_JOBS:-$(nproc)}"
tarball=/usr/src/linux-source-6.1.tar.xz
srcname=linux-source-6.1

log() { echo "kernel/build.sh: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- packages --------------------------------------------------------------
need=(linux-source-6.1 build-essential flex bison bc libelf-dev libssl-dev
	cpio xz-utils kmod patch)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
[[ -r "$tarball" ]] || die "$tarball is missing"

# --- inputs and cache key ----------------------------------------------------
mapfile -t patches < <(find "$here/patches" -maxdepth 1 -name '*.patch' | sort)
((${#patches[@]})) || die "no patches in $here/patches"
fragments=("$here/config/lean.config")
[[ "$flavor" == debug ]] && fragments+=("$here/config/debug.config")
srcver="$(dpkg-query -W -f='${Version}' linux-source-6.1)"

key="$({
	echo "source $srcver $(stat -c %s "$tarball")"
	for f in "${patches[@]}" "${fragments[@]}" "$here/build.sh"; do
		echo "== ${f#"$here"/}"
		cat "$f"
	done
} | sha256sum | cut -c1-16)"
out="$cache/$flavor-$key"

if [[ -f "$out/done" && -f "$out/bzImage" ]]; then
	log "cached: $out"
	echo "$out/bzImage"
	exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/build.lock"
log "waiting for the kernel build lock" && flock 9
# Another run may have finished the same image while we waited.
if [[ -f "$out/done" && -f "$out/bzImage" ]]; then
	log "cached: $out"
	echo "$out/bzImage"
	exit 0
fi

tree="$cache/tree-$flavor"
src="$tree/src/$srcname"
build="$tree/build"
applied="$tree/applied"
mkdir -p "$tree"
buildlog="$tree/build.log"
: >"$buildlog"

# Files a patch creates or modifies (paths inside the tree).
patch_files() {
	sed -n -e 's|^+++ b/\([^\t]*\).*|\1|p' -e 's|^--- a/\([^\t]*\).*|\1|p' "$@" |
		sort -u
}

# --- sources -----------------------------------------------------------------
# A tree without a record of its series cannot be updated safely.
if [[ -f "$tree/src.ok" ]] && ! compgen -G "$applied/*.patch" >/dev/null; then
	rm -f "$tree/src.ok"
fi
if [[ ! -f "$tree/src.ok" ]]; then
	log "extracting $tarball into $tree/src"
	rm -rf "$tree/src" "$build" "$applied" "$tree/config.sha"
	mkdir -p "$tree/src"
	tar -C "$tree/src" -xf "$tarball"
	for p in "${patches[@]}"; do
		log "applying $(basename "$p")"
		patch -s -p1 -d "$src" --no-backup-if-mismatch <"$p" >&2 ||
			die "$(basename "$p") does not apply"
	done
	mkdir -p "$applied"
	cp "${patches[@]}" "$applied/"
	touch "$tree/src.ok"
elif ! cmp -s <(cat "$applied"/*.patch 2>/dev/null) <(cat "${patches[@]}"); then
	# The series changed. Recreate every file that the old or the new
	# series touches from pristine sources plus the new series, in a
	# scratch folder, and copy over only the files whose content differs,
	# so kbuild recompiles what really changed and nothing else.
	log "series changed: updating the tree in place"
	stage="$tree/stage"
	rm -rf "$stage"
	mkdir -p "$stage"
	mapfile -t files < <(patch_files "$applied"/*.patch "${patches[@]}")
	tar -C "$stage" -xf "$tarball" --ignore-failed-read \
		"${files[@]/#/$srcname/}" 2>/dev/null || true
	for p in "${patches[@]}"; do
		patch -s -p1 -d "$stage/$srcname" --no-backup-if-mismatch <"$p" >&2 ||
			die "$(basename "$p") does not apply"
	done
	for f in "${files[@]}"; do
		if [[ -f "$stage/$srcname/$f" ]]; then
			if ! cmp -s "$stage/$srcname/$f" "$src/$f"; then
				log "  updated $f"
				mkdir -p "$(dirname "$src/$f")"
				cp "$stage/$srcname/$f" "$src/$f"
			fi
		elif [[ -e "$src/$f" ]]; then
			log "  removed $f"
			rm -f "$src/$f"
		fi
	done
	rm -rf "$stage" "$applied.new"
	mkdir -p "$applied.new"
	cp "${patches[@]}" "$applied.new/"
	rm -rf "$applied"
	mv "$applied.new" "$applied"
fi

# --- configuration -----------------------------------------------------------
config_sha="$(cat "${fragments[@]}" | sha256sum | cut -c1-16)"
if [[ ! -f "$build/.config" || "$(cat "$tree/config.sha" 2>/dev/null)" != "$config_sha" ]]; then
	log "configuring ($flavor)"
	mkdir -p "$build"
	rm -f "$tree/config.sha"
	{
		make -C "$src" O="$build" tinyconfig
		"$src/scripts/kconfig/merge_config.sh" -m -O "$build" \
			"$build/.config" "${fragments[@]}"
		make -C "$src" O="$build" olddefconfig
	} >>"$buildlog" 2>&1 || die "configuration failed, see $buildlog"
	# Every option the fragments ask for must have survived olddefconfig.
	bad=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			grep -qxF "$line" "$build/.config" || {
				log "config: wanted $line, got: $(grep -E "^(# )?${line%%=*}[= ]" "$build/.config" || echo unset)"
				bad=1
			}
			;;
		"# CONFIG_"*" is not set")
			sym="${line#\# }"
			sym="${sym%% *}"
			if grep -q "^$sym=" "$build/.config"; then
				log "config: wanted $sym off, got $(grep "^$sym=" "$build/.config")"
				bad=1
			fi
			;;
		esac
	done < <(cat "${fragments[@]}")
	((bad == 0)) || die "the fragments do not fit together"
	echo "$config_sha" >"$tree/config.sha"
fi

# --- build -------------------------------------------------------------------
log "building bzImage ($flavor, -j$jobs), log: $buildlog"
start=$SECONDS
if ! make -C "$src" O="$build" -j"$jobs" bzImage >>"$buildlog" 2>&1; then
	grep -E "error|Error" "$buildlog" | tail -n 20 >&2 || true
	die "build failed, see $buildlog"
fi
log "built in $((SECONDS - start)) s"

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
make -C "$src" O="$build" headers_install INSTALL_HDR_PATH="$out.tmp/headers" \
	>>"$buildlog" 2>&1 || die "headers_install failed, see $buildlog"
st="$src/tools/testing/selftests"
mkdir -p "$out.tmp/selftests/seccomp"
cp "$st/kselftest.h" "$st/kselftest_harness.h" "$out.tmp/selftests/"
cp "$st/seccomp/seccomp_inject_test.c" "$out.tmp/selftests/seccomp/"
cp "$build/arch/x86/boot/bzImage" "$out.tmp/bzImage"
cp "$build/.config" "$out.tmp/config"
cp "$buildlog" "$out.tmp/build.log"
touch "$out.tmp/done"
rm -rf "$out"
mv "$out.tmp" "$out"

# Keep the three newest images of this flavor.
find "$cache" -maxdepth 1 -type d -name "$flavor-*" -printf '%T@ %p\n' |
	sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf

echo "$out/bzImage"
