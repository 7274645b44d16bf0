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
# with the ext4 disk of bench/blk.sh (build/bench/blk-disk.img, made by `bench/blk.sh -p
# ext4` or here).
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

. tests/lib/host-kind.sh
if [[ "$(ember_host_kind)" == vmhost ]]; then
    bench/blk-image.sh >/dev/null
    disk=build/bench/blk-disk.img
    if [[ ! -f "$disk" ]]; then
        mkdir -p build/bench
        truncate -s 1G "$disk"
        mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$disk"
    fi
    exec tests/vmhost/run --mem 2048 --smp 2 --disk "$disk" -- \
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
    mkdir -p "$mnt"
    mountpoint -q "$mnt" || mount -t ext4 /dev/vda "$mnt"
    img=$mnt/profile.img
else
    img=$tmp/profile.img # a standard host: wherever mktemp puts it
fi
# The guest's run: QD1 for 6 s, then QD16 for 6 s (sampled after the QD1 line).
dd if=/dev/zero of="$img" bs=1M count=256 status=none
sync
for eng in "$@"; do
    cat >"$tmp/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "build/guest/vmlinux",
                   "initrd_path": "build/bench/initramfs-blk.cpio.gz",
                   "boot_args": "console=ttyS0 reboot=k panic=1 quiet i8042.noaux i8042.nomux i8042.dumbkbd -- /blk-bench.sh 6 $mode" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 256 },
  "drives": [ { "drive_id": "data", "path_on_host": "$img", "is_root_device": false,
                "io_engine": "$eng" } ]
}
JSON
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
