#!/bin/bash
# Build the guest userspace from Debian's busybox-static:
#   build/guest/initramfs.cpio.gz  (for initrd_path)
#   build/guest/rootfs.ext4        (64 MiB, for a virtio-blk root: root=/dev/vda)
# Both carry rootfs/init as /init and /sbin/init, build/ember-vsock (rootfs/ember-vsock.c,
# built here through make when missing or stale) as /bin/ember-vsock, and ember-run's guest
# agent (rootfs/ember-agent.c) as /bin/ember-agent. Cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/ember/rootfs-<hash>/. No root privileges needed.
set -euo pipefail
cd "$(dirname "$0")/.."

outdir=build/guest
cache=${XDG_CACHE_HOME:-$HOME/.cache}/ember
busybox=/bin/busybox
image_mib=64

if [[ ! -x "$busybox" ]]; then
    echo "build-rootfs: $busybox missing; run 'make deps'" >&2
    exit 1
fi
# The guest programs' bytes go into the cache key: a change to one rebuilds the images.
vsock_tool=build/ember-vsock
agent=build/ember-agent
make --no-print-directory -s "$vsock_tool" "$agent"
bbver=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || true)
key=$( {
    cat "$0" rootfs/init
    echo "$bbver $(stat -c %s "$busybox")"
    sha256sum <"$vsock_tool"
    sha256sum <"$agent"
} | sha256sum | cut -c1-16)
result=$cache/rootfs-$key

install_result() {
    mkdir -p "$outdir"
    cp -f "$result/initramfs.cpio.gz" "$outdir/initramfs.cpio.gz.tmp$$"
    mv -f "$outdir/initramfs.cpio.gz.tmp$$" "$outdir/initramfs.cpio.gz"
    # A fresh writable copy each time: guests may write to their root disk.
    cp -f --sparse=always "$result/rootfs.ext4" "$outdir/rootfs.ext4.tmp$$"
    mv -f "$outdir/rootfs.ext4.tmp$$" "$outdir/rootfs.ext4"
}

if [[ -e "$result/.done" ]]; then
    install_result
    echo "build-rootfs: from cache ($result)"
    exit 0
fi

mkdir -p "$cache"
rm -rf "$result"
mkdir -p "$result"
stage=$result/stage
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,tmp,run,mnt,root}
chmod 1777 "$stage/tmp"

cp "$busybox" "$stage/bin/busybox"
# Our init first, so the applet loop below leaves sbin/init alone.
install -m 0755 rootfs/init "$stage/init"
ln -s /init "$stage/sbin/init"
install -m 0755 "$vsock_tool" "$stage/bin/ember-vsock"
install -m 0755 "$agent" "$stage/bin/ember-agent"

# Busybox reports where each applet belongs (bin/ls, usr/sbin/chroot, ...).
while read -r applet; do
    # -L: our links are absolute, so -e would look at the build host.
    [[ -L "$stage/$applet" || -e "$stage/$applet" ]] && continue
    ln -s /bin/busybox "$stage/$applet"
done < <("$busybox" --list-full)

cat >"$stage/etc/fstab" <<'FSTAB'
proc     /proc proc     nosuid,nodev,noexec 0 0
sysfs    /sys  sysfs    nosuid,nodev,noexec 0 0
devtmpfs /dev  devtmpfs nosuid              0 0
tmpfs    /tmp  tmpfs    nosuid,nodev        0 0
FSTAB
echo 'root:x:0:0:root:/root:/bin/sh' >"$stage/etc/passwd"
echo 'root:x:0:' >"$stage/etc/group"
echo 'export PS1="ember:\w# "' >"$stage/etc/profile"
# The kernel's built-in initramfs already provides /dev/console; add the node
# anyway when we can, in case the kernel was built with its own initramfs.
if ((EUID == 0)); then
    mknod -m 600 "$stage/dev/console" c 5 1
fi

# Fixed timestamps and sorted entries keep the archive reproducible.
find "$stage" -exec touch -h -d @0 {} +
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -9 >"$result/initramfs.cpio.gz"

truncate -s "${image_mib}M" "$result/rootfs.ext4"
mke2fs -q -t ext4 -L ember-root -E root_owner=0:0 -d "$stage" \
    "$result/rootfs.ext4"

rm -rf "$stage"
touch "$result/.done"
install_result
echo "build-rootfs: built $outdir/initramfs.cpio.gz ($(stat -c %s "$outdir/initramfs.cpio.gz") bytes) and $outdir/rootfs.ext4 (${image_mib} MiB)"
