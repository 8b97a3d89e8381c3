#!/usr/bin/env bash
# Boot a kernel in QEMU (TCG, no KVM) with a busybox initramfs, run one
# command in the guest, stream the serial console to stdout and exit with
# the command's status. See "VM runner" in kernel/README.md.
#
# Usage:
#   kernel/vm/run.sh --kernel BZIMAGE [--add HOSTPATH[:GUESTPATH]]...
#                    [--timeout SECS] [--smp N] [--mem MIB] [--append ARGS]
#                    [--keep-initramfs FILE] [--image-cache DIR]
#                    -- COMMAND [ARG]...
#
# --image-cache DIR: reuse DIR/<hash>.cpio.gz when the staged image (every
# file, link, mode and the command) hashes the same; the three newest
# images are kept.
#
# Exit status:
#   0..122  the guest command's exit status
#   123     the guest command exited with 123 or more (the console line
#           "VM-RESULT: rc=N" has the exact value)
#   124     timeout: QEMU was killed after SECS seconds
#   125     runner error, or the guest stopped without reporting a status
#           (kernel panic, reboot, /init failure)
set -euo pipefail

die() {
	echo "vm/run.sh: $*" >&2
	exit 125
}

usage() {
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 125
}

kernel=""
timeout_secs=600
smp=1
mem=512
append=""
keep_initramfs=""
image_cache=""
adds=()

while (($#)); do
	case "$1" in
	--kernel) kernel="${2:?}"; shift 2 ;;
	--add) adds+=("${2:?}"); shift 2 ;;
	--timeout) timeout_secs="${2:?}"; shift 2 ;;
	--smp) smp="${2:?}"; shift 2 ;;
	--mem) mem="${2:?}"; shift 2 ;;
	--append) append="${2:?}"; shift 2 ;;
	--keep-initramfs) keep_initramfs="${2:?}"; shift 2 ;;
	--image-cache) image_cache="${2:?}"; shift 2 ;;
	-h | --help) usage ;;
	--) shift; break ;;
	*) die "unknown option: $1 (did you forget '--' before the command?)" ;;
	esac
done

(($#)) || die "no guest command given (put it after '--')"
[[ -n "$kernel" ]] || die "--kernel is required"
[[ -r "$kernel" ]] || die "kernel image not readable: $kernel"
[[ "$timeout_secs" =~ ^[0-9]+$ ]] || die "--timeout wants seconds"
[[ "$smp" =~ ^[1-9][0-9]*$ ]] || die "--smp wants a positive number"
[[ "$mem" =~ ^[1-9][0-9]*$ ]] || die "--mem wants MiB"

busybox=""
for b in /bin/busybox /usr/bin/busybox; do
	if [[ -x "$b" ]] && ! ldd "$b" >/dev/null 2>&1; then
		busybox="$b"
		break
	fi
done
[[ -n "$busybox" ]] || die "a static busybox is needed (apt-get install busybox-static)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
command -v cpio >/dev/null || die "cpio not found"
command -v gcc >/dev/null || die "gcc not found (needed once for vm-exit)"

work="$(mktemp -d "${TMPDIR:-/tmp}/vm-run.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,run}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
gcc -static -O2 -o "$root/bin/vm-exit" "$here/vm-exit.c" ||
	die "cannot build vm-exit (needs gcc and libc6-dev)"

# Copy a host file to the same path in the guest (used for shared libs).
copy_same_path() {
	local src="$1"
	mkdir -p "$root$(dirname "$src")"
	cp -L "$src" "$root$src"
}

# Copy the shared libraries and the ELF interpreter a binary needs.
copy_libs() {
	local f="$1" line lib
	local out
	out="$(ldd "$f" 2>/dev/null)" || return 0
	while read -r line; do
		lib=""
		case "$line" in
		*"=> /"*) lib="${line#*=> }"; lib="${lib%% (*}" ;;
		/*) lib="${line%% (*}" ;;
		esac
		if [[ -n "$lib" && ! -e "$root$lib" ]]; then
			copy_same_path "$lib"
		fi
	done <<<"$out"
}

for spec in "${adds[@]}"; do
	host="${spec%%:*}"
	if [[ "$spec" == *:* ]]; then
		guest="${spec#*:}"
	elif [[ -d "$host" ]]; then
		guest="/$(basename "$host")"
	else
		guest="/bin/$(basename "$host")"
	fi
	[[ -e "$host" ]] || die "--add: no such file: $host"
	[[ "$guest" == /* ]] || die "--add: guest path must be absolute: $guest"
	mkdir -p "$root$(dirname "$guest")"
	if [[ -d "$host" ]]; then
		cp -a "$host/." "$root$guest/"
		while IFS= read -r -d '' f; do
			copy_libs "$f"
		done < <(find "$host" -type f -perm -u+x -print0)
	else
		cp -L "$host" "$root$guest"
		copy_libs "$host"
	fi
done

# The guest command, each argument single-quoted for the guest's sh.
{
	printf '#!/bin/sh\n'
	sep=""
	for arg in "$@"; do
		printf "%s'%s'" "$sep" "${arg//\'/\'\\\'\'}"
		sep=" "
	done
	printf '\n'
} >"$root/etc/vm-cmd.sh"

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
hostname vm
echo "VM-START"
cd /root
sh /etc/vm-cmd.sh </dev/null
rc=$?
echo "VM-RESULT: rc=$rc"
code=$rc
[ "$code" -gt 123 ] && code=123
# isa-debug-exit at port 0xf4: QEMU exits with (code << 1) | 1.
/bin/vm-exit "$code"
reboot -f
EOF
chmod 755 "$root/init"

# The staged tree's content: paths, types, modes, link targets, file bytes.
image_hash() {
	(
		cd "$root"
		find . -printf '%p %y %m %l\n' | LC_ALL=C sort
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
	) | sha256sum | cut -c1-16
}

initramfs="$work/initramfs.cpio.gz"
cached=""
if [[ -n "$image_cache" ]]; then
	mkdir -p "$image_cache"
	cached="$image_cache/$(image_hash).cpio.gz"
fi
if [[ -n "$cached" && -f "$cached" ]]; then
	echo "vm/run.sh: cached image $cached" >&2
	touch "$cached"
	initramfs="$cached"
else
	(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$initramfs"
	if [[ -n "$cached" ]]; then
		cp "$initramfs" "$cached.tmp.$$" && mv "$cached.tmp.$$" "$cached"
		find "$image_cache" -maxdepth 1 -name '*.cpio.gz' -printf '%T@ %p\n' |
			sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -f
	fi
fi
if [[ -n "$keep_initramfs" ]]; then
	cp "$initramfs" "$keep_initramfs"
fi

log="$work/console.log"
cmdline="console=ttyS0 panic=-1 rdinit=/init $append"
qemu=(qemu-system-x86_64 -accel tcg -cpu max -m "$mem"
	-smp "$smp,sockets=$smp,cores=1,threads=1"
	-kernel "$kernel" -initrd "$initramfs" -append "$cmdline"
	-nodefaults -display none -serial stdio -no-reboot
	-device isa-debug-exit,iobase=0xf4,iosize=0x01)

set +e
timeout -k 10 "$timeout_secs" "${qemu[@]}" </dev/null | tee "$log"
status=("${PIPESTATUS[@]}")
set -e
qrc="${status[0]}"

if ((qrc == 124 || qrc == 137)); then
	echo "vm/run.sh: timeout after ${timeout_secs}s" >&2
	exit 124
fi
if ((qrc % 2 == 1)); then
	exit $((qrc >> 1))
fi
# No debug-exit: fall back to the console line, else report failure.
line="$(grep -a -o 'VM-RESULT: rc=[0-9]*' "$log" | tail -n 1 || true)"
if [[ -n "$line" ]]; then
	rc="${line##*=}"
	((rc > 123)) && rc=123
	exit "$rc"
fi
echo "vm/run.sh: the guest stopped without reporting a status (qemu rc $qrc)" >&2
exit 125
