#!/bin/bash
# Where the CPU goes while a Linux guest runs one virtio-blk row: ember boots the blk bench
# guest (bench/blk-image.sh) on an image on ext4 with each engine given, and once the row's
# QD1 result is out `perf record -a -g` samples the whole host for SECONDS during its QD16
# run. Prints the guest's results, ember's request/batch/interrupt counts, and the samples by
# thread, by CPU and thread, and by function.
#
#   bench/blk-profile.sh [-m write|read|randread] [-t SECONDS] ENGINE...   (Sync, Async)
#
# Needs a standard /dev/kvm; on a PVM host it re-runs itself inside the emulated KVM host
# with the ext4 disk of bench/blk.sh (bench/lib.sh's blk_make_disk).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=write
secs=3
while (($#)); do
    case "$1" in
    -m) mode=$2; shift 2 ;;
    -t) secs=$2; shift 2 ;;
    -*) echo "usage: $0 [-m write|read|randread] [-t SECONDS] ENGINE..." >&2; exit 2 ;;
    *) break ;;
    esac
done
(($#)) || set -- Sync Async
command -v perf >/dev/null || { echo "blk-profile: perf is not installed" >&2; exit 1; }

. bench/lib.sh
. tests/lib/host-kind.sh
if [[ "$(ember_host_kind)" == vmhost ]]; then
    bench/blk-image.sh >/dev/null
    blk_make_disk
    exec tests/vmhost/run --mem 2048 --smp 2 --disk "$BLK_DISK" -- \
        bench/blk-profile.sh -m "$mode" -t "$secs" "$@"
fi

mnt=/tmp/ember-blk-profile
tmp=$(mktemp -d)
cleanup() {
    rm -rf "$tmp"
    ! mountpoint -q "$mnt" 2>/dev/null || umount "$mnt"
}
trap cleanup EXIT
if [[ -n "${EMBER_IN_VMHOST:-}" ]]; then
    blk_mount_ext4 "$mnt"
    img=$mnt/profile.img
else
    img=$tmp/profile.img # a standard host: wherever mktemp puts it
fi
# The guest's run: QD1 for 6 s, then QD16 for 6 s (sampled after the QD1 line).
blk_write_image "$img"
for eng in "$@"; do
    blk_ember_config "$eng" "$img" "6 $mode" >"$tmp/vm.json"
    log=$tmp/$eng.log
    timeout 120 build/ember --no-api --level Debug --config-file "$tmp/vm.json" </dev/null >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do grep -q "RESULT $mode qd=1 " "$log" && break; sleep 0.1; done
    sleep 1
    perf record -q -a -g -F 499 -o "$tmp/$eng.perf" -- sleep "$secs" >/dev/null 2>&1
    wait "$pid" || true
    echo "== $eng"
    grep -a '^RESULT' "$log" | tr -d '\r'
    grep -a 'requests in .* batches' "$log" | sed 's/^.*drive /ember: drive /'
    echo "-- samples by thread"
    perf report -i "$tmp/$eng.perf" --no-children --sort comm -g none --stdio 2>/dev/null |
        sed -e '/^#/d' -e '/^$/d' | sed -n 1,8p
    echo "-- samples by CPU and thread (which threads share the vCPU thread's CPU)"
    perf report -i "$tmp/$eng.perf" --no-children --sort cpu,comm -g none --stdio 2>/dev/null |
        sed -e '/^#/d' -e '/^$/d' | sed -n 1,10p
    echo "-- samples by function"
    perf report -i "$tmp/$eng.perf" --no-children --sort comm,sym -g none --stdio 2>/dev/null |
        sed -e '/^#/d' -e '/^$/d' | sed -n 1,20p
done
