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
# The guest runs `/blk-bench.sh SECONDS`: every row against the first virtio disk.
cat >"$stage/blk-bench.sh" <<'SH'
#!/bin/sh
secs=${1:-3}
dev=/dev/vda
[ -b $dev ] || { echo "blk-bench: no $dev"; exit 1; }
for row in "write 131072" "read 131072" "randread 4096"; do
    set -- $row
    for qd in 1 16; do
        /bin/blkbench $dev $1 $2 $qd $secs || echo "RESULT $1 qd=$qd FAILED"
    done
done
SH
chmod 0755 "$stage/blk-bench.sh"
find "$stage" -exec touch -h -d @0 {} +
{
    cat "$base"
    (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -n -9)
} >"$out/initramfs-blk.cpio.gz.tmp"
mv -f "$out/initramfs-blk.cpio.gz.tmp" "$out/initramfs-blk.cpio.gz"
echo "blk-image: $out/initramfs-blk.cpio.gz"
