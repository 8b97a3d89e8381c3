#!/usr/bin/env bash
# Build the project's VM kernel: Debian's linux-source-6.12 (6.12 LTS) plus
# the series in kernel/patches/, configured from tinyconfig and
# kernel/config/*.config.
#
# Usage: kernel/build.sh [lean|debug]      (default: lean)
#        kernel/build.sh series            only the series check below
#
# The last line of stdout is the path of the bzImage; everything else goes
# to stderr or to the build log. Next to the bzImage, in the same folder:
# config (the final .config), headers/ (headers_install output, for
# building userspace against the new uapi), selftests/ (the selftest source
# with the kselftest headers it includes) and build.log.
#
# The lean build also checks the series itself, once per content hash:
# checkpatch --strict reports 0 errors, 0 warnings and 0 checks on every
# patch, and for every prefix of the series each C file the series changes
# compiles against that prefix's headers (in a tree of its own, walked in
# order, incrementally); the full series is the image.
#
# Caching (root: $KERNEL_CACHE_DIR, default /var/cache/seccomp-agent/kernel):
#   <flavor>-6.12-<hash>/  finished image; <hash> covers the patches, the
#                          fragments, this script and the source package. A
#                          hit returns at once, with no build and no lock.
#   series-6.12-<hash>.ok  the series check passed for that content.
#   tree-6.12-series/      the tree the series check walks (lean config).
#   tree-6.12-<flavor>/    extracted sources (src/), kbuild output (build/)
#                          and the patches the sources carry (applied/), at
#                          a fixed path so a changed series or fragment
#                          rebuilds incrementally: only files whose patched
#                          content changes are rewritten.
#   tree-6.12-<flavor>.lock  flock held while a run uses that tree, so two
#                          concurrent builds never share it; the second one
#                          finds the first one's image when it gets the lock.
#
# Environment: KERNEL_JOBS (default: number of CPUs), KERNEL_CACHE_DIR.
set -euo pipefail

flavor="${1:-lean}"
case "$flavor" in
lean | debug | series) ;;
*)
	echo "usage: $0 [lean|debug|series]" >&2
	exit 2
	;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KERNEL_CACHE_DIR:-/var/cache/seccomp-agent/kernel}"
jobs="${KERNEL_JOBS:-$(nproc)}"
srcpkg=linux-source-6.12
tarball="/usr/src/$srcpkg.tar.xz"
srcname="$srcpkg"

log() { echo "kernel/build.sh: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- packages --------------------------------------------------------------
# python3-ply and python3-git: checkpatch's SPDX check (scripts/spdxcheck.py).
need=("$srcpkg" build-essential flex bison bc libelf-dev libssl-dev
	cpio xz-utils kmod patch perl python3-ply python3-git)
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

# --- inputs and cache keys -------------------------------------------------
# The series: every numbered patch except the cover letter (0000-*).
mapfile -t patches < <(find "$here/patches" -maxdepth 1 -name '[0-9][0-9][0-9][0-9]-*.patch' \
	! -name '0000-*' | sort)
((${#patches[@]})) || die "no patches in $here/patches"
fragments=("$here/config/lean.config")
[[ "$flavor" == debug ]] && fragments+=("$here/config/debug.config")
# (series: the lean fragment)
srcver="$(dpkg-query -W -f='${Version}' "$srcpkg")"

content_key() {
	{
		echo "source $srcver $(stat -c %s "$tarball")"
		for f in "$@" "$here/build.sh"; do
			echo "== ${f#"$here"/}"
			cat "$f"
		done
	} | sha256sum | cut -c1-16
}
key="$(content_key "${patches[@]}" "${fragments[@]}")"
out="$cache/$flavor-6.12-$key"
series_ok="$cache/series-6.12-$(content_key "${patches[@]}" "$here/config/lean.config").ok"

# The series check, in its own tree (tree-6.12-series, lean config) so
# that walking the prefixes never touches the image trees: for each
# prefix, every C file the series changes is compiled against the headers
# of that prefix (the full series is then built into the image).
run_series_check() {
	[[ -f "$series_ok" ]] && return 0
	(
		exec 8>"$cache/tree-6.12-series.lock"
		log "waiting for the lock on $cache/tree-6.12-series"
		flock 8
		[[ -f "$series_ok" ]] && exit 0
		fragments=("$here/config/lean.config")
		tree="$cache/tree-6.12-series"
		src="$tree/src/$srcname"
		build="$tree/build"
		applied="$tree/applied"
		buildlog="$tree/build.log"
		mkdir -p "$tree"
		: >"$buildlog"
		check_series
	)
	touch "$series_ok"
}

image_ready() {
	[[ -f "$out/done" && -f "$out/bzImage" ]] &&
		{ [[ "$flavor" != lean ]] || [[ -f "$series_ok" ]]; }
}
if [[ "$flavor" == series ]]; then
	[[ -f "$series_ok" ]] && { log "series check: cached"; exit 0; }
elif image_ready; then
	log "cached: $out"
	echo "$out/bzImage"
	exit 0
else
	tree="$cache/tree-6.12-$flavor"
	mkdir -p "$tree"
	exec 9>"$tree.lock"
	log "waiting for the lock on $tree" && flock 9
	# Another run may have finished the same image while we waited.
	if image_ready; then
		log "cached: $out"
		echo "$out/bzImage"
		exit 0
	fi
	src="$tree/src/$srcname"
	build="$tree/build"
	applied="$tree/applied"
	buildlog="$tree/build.log"
	: >"$buildlog"
fi

# Files a patch creates or modifies (paths inside the tree).
patch_files() {
	sed -n -e 's|^+++ b/\([^\t]*\).*|\1|p' -e 's|^--- a/\([^\t]*\).*|\1|p' "$@" |
		sort -u
}

# Bring src/ to the tarball plus exactly the given patches. Only files whose
# content changes are rewritten, so kbuild rebuilds what really changed.
sync_tree() {
	local files f
	if [[ -f "$tree/src.ok" && ! -d "$applied" ]]; then
		rm -f "$tree/src.ok" # no record of what the sources carry
	fi
	if [[ ! -f "$tree/src.ok" ]]; then
		log "extracting $tarball into $tree/src"
		rm -rf "$tree/src" "$build" "$applied" "$tree/config.sha"
		mkdir -p "$tree/src" "$applied"
		tar -C "$tree/src" -xf "$tarball"
		touch "$tree/src.ok"
	fi
	if cmp -s <(cat "$applied"/*.patch 2>/dev/null) <(cat "$@" /dev/null); then
		return 0
	fi
	local stage="$tree/stage"
	rm -rf "$stage"
	mkdir -p "$stage"
	mapfile -t files < <(patch_files "$applied"/*.patch "$@" 2>/dev/null)
	((${#files[@]})) && { tar -C "$stage" -xf "$tarball" --ignore-failed-read \
		"${files[@]/#/$srcname/}" 2>/dev/null || true; }
	mkdir -p "$stage/$srcname"
	for p in "$@"; do
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
	(($#)) && cp "$@" "$applied.new/"
	rm -rf "$applied"
	mv "$applied.new" "$applied"
}

configure() {
	local config_sha bad=0 line sym
	config_sha="$(cat "${fragments[@]}" | sha256sum | cut -c1-16)"
	[[ -f "$build/.config" && "$(cat "$tree/config.sha" 2>/dev/null)" == "$config_sha" ]] &&
		return 0
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
}

make_bzimage() { # what: for messages
	local start=$SECONDS
	log "building bzImage ($flavor, $1, -j$jobs), log: $buildlog"
	if ! make -C "$src" O="$build" -j"$jobs" bzImage >>"$buildlog" 2>&1; then
		grep -E "error|Error" "$buildlog" | tail -n 20 >&2 || true
		die "$1: build failed, see $buildlog"
	fi
	log "$1: built in $((SECONDS - start)) s"
}

# A patch that changes only documentation or selftests cannot change the
# kernel build; its prefix needs no build of its own.
touches_kernel() {
	patch_files "$1" | grep -qvE '^(Documentation|tools/testing/selftests)/'
}

# checkpatch --strict, 0/0/0 on every patch. A patch that adds files gets
# FILE_PATH_CHANGES ("does MAINTAINERS need updating?") unless it also
# touches MAINTAINERS; that warning is ignored only when get_maintainer.pl
# shows every added file already covered by a maintained entry.
checkpatch_series() {
	local p added f res ignore
	for p in "${patches[@]}"; do
		ignore=()
		mapfile -t added < <(grep -B1 '^new file mode' "$p" |
			sed -n 's|^diff --git a/\([^ ]*\) .*|\1|p')
		if ((${#added[@]})); then
			for f in "${added[@]}"; do
				(cd "$src" && perl scripts/get_maintainer.pl --nogit \
					--nogit-fallback -f "$f") | grep -q '(maintainer:' ||
					die "$(basename "$p"): $f is not covered by MAINTAINERS"
			done
			ignore=(--ignore FILE_PATH_CHANGES)
		fi
		# Debian's python3 (with ply and git), not one earlier in PATH.
		res="$(cd "$src" && PATH="/usr/bin:$PATH" perl scripts/checkpatch.pl \
			--strict "${ignore[@]}" "$p" 2>&1)" || true
		{ grep -q '^total: 0 errors, 0 warnings, 0 checks' <<<"$res" &&
			! grep -q 'Traceback' <<<"$res"; } || {
			echo "$res" >&2
			die "checkpatch --strict: $(basename "$p") is not clean"
		}
		log "checkpatch --strict: $(basename "$p"): 0 errors, 0 warnings, 0 checks${ignore:+ (FILE_PATH_CHANGES ignored: added files covered by MAINTAINERS)}"
	done
}

check_series() {
	local n=${#patches[@]} k objs
	mapfile -t objs < <(patch_files "${patches[@]}" |
		grep -vE '^(Documentation|tools)/' | sed -n 's/\.c$/.o/p')
	for ((k = 1; k <= n; k++)); do
		if ((k < n)) && ! touches_kernel "${patches[k]}"; then
			continue # the next patch leaves the kernel as it is
		fi
		sync_tree "${patches[@]:0:k}"
		configure
		local start=$SECONDS
		log "prefix $k/$n ($(basename "${patches[k - 1]}")): compiling ${objs[*]}"
		if ! make -C "$src" O="$build" -j"$jobs" "${objs[@]}" >>"$buildlog" 2>&1; then
			grep -E "error|Error" "$buildlog" | tail -n 20 >&2 || true
			die "prefix $k/$n does not compile, see $buildlog"
		fi
		log "prefix $k/$n: compiled in $((SECONDS - start)) s"
	done
	checkpatch_series
}

# --- build ------------------------------------------------------------------
if [[ "$flavor" == series ]]; then
	run_series_check
	log "series check: passed"
	exit 0
fi
[[ "$flavor" == lean ]] && run_series_check
sync_tree "${patches[@]}"
configure
make_bzimage "series"

if [[ ! -f "$out/done" ]]; then
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
fi

# Keep the three newest images of this flavor.
find "$cache" -maxdepth 1 -type d -name "$flavor-6.12-*" -printf '%T@ %p\n' |
	sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf

echo "$out/bzImage"
