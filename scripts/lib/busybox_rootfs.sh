# Sourced, not run. busybox_rootfs ROOTFS [DIR...]: a minimal container root
# filesystem at ROOTFS: the host's static busybox with a link per applet,
# bin proc dev sys tmp (1777) etc and any further DIRs, and an /etc/passwd
# with root.
busybox_rootfs() {
  local root=$1 d applet
  shift
  mkdir -p "$root"/{bin,proc,dev,sys,tmp,etc}
  for d in "$@"; do mkdir -p "$root/$d"; done
  chmod 1777 "$root/tmp"
  cp /usr/bin/busybox "$root/bin/busybox"
  for applet in $(/usr/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
  done
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
}
