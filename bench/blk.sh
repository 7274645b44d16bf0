#!/bin/bash
# virtio-blk throughput from inside a Linux guest: ember with the Sync engine, ember with
# the Async (io_uring) engine, and QEMU's microvm virtio-blk (the peer), on the same raw
# image in the same run. Rows: sequential write and read (128 KiB blocks) in MB/s and
# 4 KiB random reads in IOPS, at queue depth 1 and 16 (bench/blkbench.c in the guest).
#
#   bench/blk.sh [-t SECONDS_PER_ROW] [-r ROUNDS] [-p tmpfs|ext4|both] [-m MODES] [-d DIR]
#
# Needs a standard /dev/kvm; on a PVM host it re-runs itself inside the emulated KVM host
# (tests/vmhost/run, 2 GiB, 2 CPUs). Placement of the image (-p): tmpfs (the host's /tmp, the
# default: the numbers are the VMMs', not a filesystem's), ext4 (an ext4 on a disk of the
# emulated host: build/bench/blk-disk.img of this machine attached as its virtio disk, so
# reads the page cache holds complete at once and the rest wait on a device), or both, one
# table each; -d DIR puts it in DIR instead. Each VMM boots ROUNDS times, interleaved; the
# table shows the median. -m limits the rows to the modes given ("write read randread").
# A second table gives the guest's interrupts per request (from its /proc/interrupts).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

secs=3
rounds=1
dir=
placement=tmpfs
modes="write read randread"
usage() { echo "usage: $0 [-t SECONDS_PER_ROW] [-r ROUNDS] [-p tmpfs|ext4|both] [-m MODES] [-d DIR]" >&2; exit 2; }
while (($#)); do
    case "$1" in
    -t) secs=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -d) dir=$2; shift 2 ;;
    -p) placement=$2; shift 2 ;;
    -m) modes=$2; shift 2 ;;
    *) usage ;;
    esac
done
case "$placement" in
tmpfs | ext4) placements=("$placement") ;;
both) placements=(tmpfs ext4) ;;
*) usage ;;
esac
[[ -z "$dir" ]] || placements=(dir)
for m in $modes; do [[ "$m" =~ ^(write|read|randread)$ ]] || usage; done

. bench/lib.sh
. tests/lib/host-kind.sh
if [[ "$(ember_host_kind)" == vmhost ]]; then
    bench/blk-image.sh >/dev/null
    export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-3600}
    disk_arg=()
    if [[ " ${placements[*]} " == *" ext4 "* ]]; then
        blk_make_disk
        disk_arg=(--disk "$BLK_DISK")
    fi
    exec tests/vmhost/run --mem 2048 --smp 2 "${disk_arg[@]}" -- \
        bench/blk.sh -t "$secs" -r "$rounds" -p "$placement" -m "$modes" ${dir:+-d "$dir"}
fi
[[ -n "${EMBER_IN_VMHOST:-}" ]] || bench/blk-image.sh >/dev/null

kernel=$BLK_KERNEL
initrd=$BLK_INITRD
for f in "$kernel" "$initrd" build/ember; do
    [[ -f "$f" ]] || { echo "blk: $f missing; run 'make all kernel rootfs'" >&2; exit 1; }
done

mnt=/tmp/ember-blk-ext4
cleanup() {
    [[ -z "${tmp:-}" ]] || rm -rf "$tmp"
    ! mountpoint -q "$mnt" 2>/dev/null || umount "$mnt"
}
trap cleanup EXIT

# place_image PLACEMENT: sets dir (where the image goes) and mounts what it needs.
place_image() {
    case $1 in
    tmpfs) dir=/tmp ;;
    dir) ;; # -d DIR
    ext4)
        if [[ -z "${EMBER_IN_VMHOST:-}" ]]; then
            echo "blk: -p ext4 runs in the emulated host; elsewhere give -d DIR on ext4" >&2
            exit 2
        fi
        blk_mount_ext4 "$mnt"
        dir=$mnt
        ;;
    esac
}

args=$BLK_ARGS
per_boot=$((secs * 6 + 120))

ember_run() { # ember_run ENGINE LOG
    blk_ember_config "$1" "$img" "$secs $modes_arg" >"$tmp/vm.json"
    timeout "$per_boot" build/ember --no-api --level Debug --config-file "$tmp/vm.json" </dev/null >"$2" 2>&1
}

# QEMU's microvm with its one virtio-mmio transport in use announced by hand: its own
# auto-kernel-cmdline would land after " -- ", among init's arguments. The TSC-deadline
# timer as ember offers it: without it the guest calibrates its LAPIC timer against the
# PIT, which fails now and then in the emulated host, and that boot runs on the PIT.
qemu_run() { # qemu_run LOG
    timeout "$per_boot" qemu-system-x86_64 \
        -M microvm,acpi=off,x-option-roms=off,auto-kernel-cmdline=off,rtc=off \
        -accel kvm -cpu "${EMBER_BENCH_QEMU_CPU:-qemu64,+tsc-deadline}" -m 256 -smp 1 \
        -nodefaults -no-user-config -display none -serial stdio -no-reboot \
        -kernel "$kernel" -initrd "$initrd" \
        -append "$args virtio_mmio.device=512@0xfeb00e00:12 -- /blk-bench.sh $secs $modes_arg" \
        -drive "file=$img,if=none,id=data,format=raw,cache=writeback,aio=threads" \
        -device virtio-blk-device,drive=data \
        </dev/null >"$1" 2>&1
}

vmms=(sync async qemu)
modes_arg=${modes// /,}

# run_placement PLACEMENT: every round of every VMM with the image there, then the tables.
run_placement() {
place_image "$1"
tmp=$(mktemp -d "$dir/ember-blk-bench.XXXXXX")
img=$tmp/data.img
blk_write_image "$img"
declare -A results=()
for ((r = 1; r <= rounds; r++)); do
    for v in "${vmms[@]}"; do
        log=$tmp/$v.$r.log
        case $v in
        sync) ember_run Sync "$log" || true ;;
        async) ember_run Async "$log" || true ;;
        qemu) qemu_run "$log" || true ;;
        esac
        if ! grep -q '^RESULT' "$log"; then
            echo "blk: $v round $r produced no results; its console:" >&2
            tail -n 20 "$log" >&2
        fi
        while read -r _ mode qd _ ops _ mbps iops irqs _; do
            ops=${ops#ops=} irqs=${irqs#irqs=}
            per=$(awk -v i="$irqs" -v o="$ops" 'BEGIN { if (i == "" || o + 0 == 0) print "-"; else printf "%.2f", i / o }')
            results[$v,$mode,${qd#qd=},$r]="${mbps#MBps=} ${iops#IOPS=} $per"
        done < <(grep -a '^RESULT' "$log" | tr -d '\r')
        # ember's own count of requests, batches, notifications and interrupts.
        grep -a 'requests in .* batches' "$log" | sed "s/^.*drive /  $v round $r: drive /" || true
        echo "  $v round $r: guest clock events: $(grep -a '^GUEST clockevent' "$log" | tr -d '\r' | cut -d' ' -f3 | sort -u | tr '\n' ' ')"
    done
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

value() { # value VMM MODE QD FIELD(1: MB/s, 2: IOPS, 3: interrupts per request)
    for ((r = 1; r <= rounds; r++)); do
        local x=${results[$1,$2,$3,$r]:-}
        if [[ -n "$x" ]]; then
            awk -v x="$x" -v k="$4" 'BEGIN { split(x, a, " "); print a[k] }'
        fi
    done | median
}

echo "image on $1: $dir ($(stat -f -c %T "$dir"))"
printf '%-26s %10s %10s %10s %12s %12s\n' row 'ember Sync' 'ember Async' QEMU 'Async/Sync' 'ember/QEMU'
for row in "write 1 1 seq write 128K QD1 (MB/s)" "write 16 1 seq write 128K QD16 (MB/s)" \
    "read 1 1 seq read 128K QD1 (MB/s)" "read 16 1 seq read 128K QD16 (MB/s)" \
    "randread 1 2 rand read 4K QD1 (IOPS)" "randread 16 2 rand read 4K QD16 (IOPS)"; do
    read -r mode qd field label <<<"$row"
    [[ " $modes " == *" $mode "* ]] || continue
    s=$(value sync "$mode" "$qd" "$field")
    a=$(value async "$mode" "$qd" "$field")
    q=$(value qemu "$mode" "$qd" "$field")
    ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (x == "-" || y == "-" || y == 0) print "-"; else printf "%.2f", x / y }'; }
    best=$(awk -v s="$s" -v a="$a" 'BEGIN { if (s == "-") print a; else if (a == "-" || s > a) print s; else print a }')
    printf '%-26s %10s %10s %10s %12s %12s\n' "$label" "$s" "$a" "$q" "$(ratio "$a" "$s")" "$(ratio "$best" "$q")"
done
echo "guest interrupts per request (virtio, /proc/interrupts), medians:"
for row in "write 1" "write 16" "read 1" "read 16" "randread 1" "randread 16"; do
    read -r mode qd <<<"$row"
    [[ " $modes " == *" $mode "* ]] || continue
    printf '  %-9s QD%-3s Sync %5s  Async %5s  QEMU %5s\n' "$mode" "$qd" \
        "$(value sync "$mode" "$qd" 3)" "$(value async "$mode" "$qd" 3)" "$(value qemu "$mode" "$qd" 3)"
done
echo "rounds: $rounds, ${secs} s per row, image in $dir ($(stat -f -c %T "$dir")); ember/QEMU uses the better ember engine of the row"
echo "host: $(nproc) CPUs, $(uname -r)${EMBER_IN_VMHOST:+ (emulated KVM host: QEMU TCG, nested SVM)}"
rm -rf "$tmp"
tmp=
echo
}

for p in "${placements[@]}"; do
    run_placement "$p"
done
