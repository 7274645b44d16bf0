#!/bin/bash
# Builds what bench/blk.sh boots: bench/blkbench.c as a static binary, added with a small
# driver script to a copy of the guest initramfs (a second cpio archive appended to the
# first: the kernel unpacks both).
#   build/bench/blkbench
#   build/bench/initramfs-blk.cpio.gz   (needs build/guest/initramfs.cpio.gz: make rootfs)
set -euo pipefail
cd "$(dirname "$0")/.."

out=build/bench
base=build/guest/initramfs.cpio.gz
[[ -f "$base" ]] || { echo "blk-image: $base missing; run 'make rootfs'" >&2; exit 1; }
mkdir -p "$out"
if [[ ! -x "$out/blkbench" || bench/blkbench.c -nt "$out/blkbench" ]]; then
    ${CC:-gcc} -O2 -Wall -Wextra -Werror -static -pthread -o "$out/blkbench" bench/blkbench.c
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin"
cp "$out/blkbench" "$stage/bin/blkbench"
# The guest runs `/blk-bench.sh SECONDS [MODES]`: every row (or those of the modes given,
# comma-separated) against the first virtio disk, each RESULT line followed by irqs=N, the
# virtio interrupts the guest took meanwhile.
cat >"$stage/blk-bench.sh" <<'SH'
#!/bin/sh
secs=${1:-3}
modes=$(echo "${2:-write,read,randread}" | tr , ' ')
dev=/dev/vda
[ -b $dev ] || { echo "blk-bench: no $dev"; exit 1; }
irqs() { awk '/virtio/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i } END { print n + 0 }' /proc/interrupts; }
for row in "write 131072" "read 131072" "randread 4096"; do
    set -- $row
    case " $modes " in *" $1 "*) ;; *) continue ;; esac
    for qd in 1 16; do
        before=$(irqs)
        line=$(/bin/blkbench $dev $1 $2 $qd $secs) || line="RESULT $1 qd=$qd FAILED"
        echo "$line irqs=$(($(irqs) - before))"
    done
done
# What the guest's timers and interrupts were (for bench/blk.sh -v).
for c in /sys/devices/system/clockevents/clockevent*/current_device; do echo "GUEST clockevent $(cat $c)"; done
sed 's/^/GUEST /' /proc/interrupts
SH
chmod 0755 "$stage/blk-bench.sh"
find "$stage" -exec touch -h -d @0 {} +
{
    cat "$base"
    (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -n -9)
} >"$out/initramfs-blk.cpio.gz.tmp"
mv -f "$out/initramfs-blk.cpio.gz.tmp" "$out/initramfs-blk.cpio.gz"
echo "blk-image: $out/initramfs-blk.cpio.gz"
