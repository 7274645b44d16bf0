#!/bin/bash
# virtio-blk throughput from inside a Linux guest: ember with the Sync engine, ember with
# the Async (io_uring) engine, and QEMU's microvm virtio-blk (the peer), on the same raw
# image in the same run. Rows: sequential write and read (128 KiB blocks) in MB/s and
# 4 KiB random reads in IOPS, at queue depth 1 and 16 (bench/blkbench.c in the guest).
#
#   bench/blk.sh [-t SECONDS_PER_ROW] [-r ROUNDS] [-d DIR]
#
# Needs a standard /dev/kvm; on a PVM host it re-runs itself inside the emulated KVM host
# (tests/vmhost/run, 2 GiB, 2 CPUs). The image lives on the host's tmpfs (/tmp) so that
# the numbers are the VMMs', not a shared filesystem's. Each VMM boots ROUNDS times,
# interleaved; the table shows the median.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

secs=3
rounds=1
dir=/tmp
while (($#)); do
    case "$1" in
    -t) secs=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -d) dir=$2; shift 2 ;;
    *) echo "usage: $0 [-t SECONDS_PER_ROW] [-r ROUNDS] [-d DIR]" >&2; exit 2 ;;
    esac
done

. tests/lib/host-kind.sh
if [[ "$(ember_host_kind)" == vmhost ]]; then
    bench/blk-image.sh >/dev/null
    export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-1800}
    exec tests/vmhost/run --mem 2048 --smp 2 -- bench/blk.sh -t "$secs" -r "$rounds" -d "$dir"
fi
[[ -n "${EMBER_IN_VMHOST:-}" ]] || bench/blk-image.sh >/dev/null

kernel=build/guest/vmlinux
initrd=build/bench/initramfs-blk.cpio.gz
for f in "$kernel" "$initrd" build/ember; do
    [[ -f "$f" ]] || { echo "blk: $f missing; run 'make all kernel rootfs'" >&2; exit 1; }
done

tmp=$(mktemp -d "$dir/ember-blk-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
img=$tmp/data.img
# Written out (not sparse), so that both VMMs read real pages.
dd if=/dev/zero of="$img" bs=1M count=256 status=none

args="console=ttyS0 reboot=k panic=1 quiet i8042.noaux i8042.nomux i8042.dumbkbd"
per_boot=$((secs * 6 + 120))

ember_run() { # ember_run ENGINE LOG
    cat >"$tmp/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$kernel", "initrd_path": "$initrd",
                   "boot_args": "$args -- /blk-bench.sh $secs" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 256 },
  "drives": [ { "drive_id": "data", "path_on_host": "$img", "is_root_device": false,
                "io_engine": "$1" } ]
}
JSON
    timeout "$per_boot" build/ember --no-api --config-file "$tmp/vm.json" </dev/null >"$2" 2>&1
}

# QEMU's microvm with its one virtio-mmio transport in use announced by hand: its own
# auto-kernel-cmdline would land after " -- ", among init's arguments.
qemu_run() { # qemu_run LOG
    timeout "$per_boot" qemu-system-x86_64 \
        -M microvm,acpi=off,x-option-roms=off,auto-kernel-cmdline=off,rtc=off \
        -accel kvm -cpu "${EMBER_BENCH_QEMU_CPU:-qemu64}" -m 256 -smp 1 \
        -nodefaults -no-user-config -display none -serial stdio -no-reboot \
        -kernel "$kernel" -initrd "$initrd" \
        -append "$args virtio_mmio.device=512@0xfeb00e00:12 -- /blk-bench.sh $secs" \
        -drive "file=$img,if=none,id=data,format=raw,cache=writeback,aio=threads" \
        -device virtio-blk-device,drive=data \
        </dev/null >"$1" 2>&1
}

vmms=(sync async qemu)
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
        while read -r _ mode qd _ _ _ mbps iops _; do
            results[$v,$mode,${qd#qd=},$r]="${mbps#MBps=} ${iops#IOPS=}"
        done < <(grep -a '^RESULT' "$log" | tr -d '\r')
    done
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

value() { # value VMM MODE QD FIELD(1: MB/s, 2: IOPS)
    for ((r = 1; r <= rounds; r++)); do
        local x=${results[$1,$2,$3,$r]:-}
        [[ -n "$x" ]] && awk -v x="$x" -v k="$4" 'BEGIN { split(x, a, " "); print a[k] }'
    done | median
}

printf '%-26s %10s %10s %10s %12s %12s\n' row 'ember Sync' 'ember Async' QEMU 'Async/Sync' 'ember/QEMU'
for row in "write 1 1 seq write 128K QD1 (MB/s)" "write 16 1 seq write 128K QD16 (MB/s)" \
    "read 1 1 seq read 128K QD1 (MB/s)" "read 16 1 seq read 128K QD16 (MB/s)" \
    "randread 1 2 rand read 4K QD1 (IOPS)" "randread 16 2 rand read 4K QD16 (IOPS)"; do
    read -r mode qd field label <<<"$row"
    s=$(value sync "$mode" "$qd" "$field")
    a=$(value async "$mode" "$qd" "$field")
    q=$(value qemu "$mode" "$qd" "$field")
    ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (x == "-" || y == "-" || y == 0) print "-"; else printf "%.2f", x / y }'; }
    best=$(awk -v s="$s" -v a="$a" 'BEGIN { if (s == "-") print a; else if (a == "-" || s > a) print s; else print a }')
    printf '%-26s %10s %10s %10s %12s %12s\n' "$label" "$s" "$a" "$q" "$(ratio "$a" "$s")" "$(ratio "$best" "$q")"
done
echo "rounds: $rounds, ${secs} s per row, image in $dir ($(stat -f -c %T "$dir")); ember/QEMU uses the better ember engine of the row"
echo "host: $(nproc) CPUs, $(uname -r)${EMBER_IN_VMHOST:+ (emulated KVM host: QEMU TCG, nested SVM)}"
