#!/bin/bash
# Linux boot to /init: QEMU's microvm machine (the peer) against ember, same
# guest kernel (build/guest/vmlinux), same initramfs, same command line, boots
# interleaved in one run. Time = from just before the VMM process is started
# until the guest's /init prints the marker line on the serial console, read
# by this script the same way for both VMMs.
#
#   bench/linux-boot.sh [-n BOOTS] [--qemu-only|--ember-only]
#
# Needs a standard /dev/kvm; on a PVM host it re-runs itself inside the
# emulated KVM host (tests/vmhost/run). Env: EMBER_BENCH_BOOT_ARGS replaces the
# kernel arguments before " -- "; EMBER_BENCH_TIMEOUT (s, default 60) per boot;
# EMBER_BENCH_QEMU_CPU (default host) is QEMU's -cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # EPOCHREALTIME must use '.' as its decimal point

boots=5
vmms=(qemu ember)
while (($#)); do
    case "$1" in
    -n) boots=$2; shift 2 ;;
    --qemu-only) vmms=(qemu); shift ;;
    --ember-only) vmms=(ember); shift ;;
    *) echo "usage: $0 [-n BOOTS] [--qemu-only|--ember-only]" >&2; exit 2 ;;
    esac
done

. tests/lib/host-kind.sh
if [[ "$(ember_host_kind)" == vmhost ]]; then
    args=(-n "$boots")
    ((${#vmms[@]} == 2)) || args+=("--${vmms[0]}-only")
    exec tests/vmhost/run -- bench/linux-boot.sh "${args[@]}"
fi

kernel=build/guest/vmlinux
initrd=build/guest/initramfs.cpio.gz
marker=EMBER-BENCH-INIT
for f in "$kernel" "$initrd"; do
    [[ -f "$f" ]] || { echo "linux-boot: $f missing; run 'make kernel rootfs'" >&2; exit 1; }
done
if [[ " ${vmms[*]} " == *" ember "* && ! -x build/ember ]]; then
    echo "linux-boot: build/ember missing; run 'make'" >&2
    exit 1
fi
# quiet: otherwise the run measures how fast each VMM emulates a UART
# printing the kernel log, not how fast Linux boots.
boot_args=${EMBER_BENCH_BOOT_ARGS:-console=ttyS0 reboot=k panic=1 quiet i8042.noaux i8042.nomux i8042.dumbkbd}
boot_args+=" -- echo $marker"
per_boot=${EMBER_BENCH_TIMEOUT:-60}
# host: ember too gives the guest the host's CPUID (filtered), so this is like for like.
qemu_cpu=${EMBER_BENCH_QEMU_CPU:-host}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The peer: microvm without ACPI, option ROMs or RTC, booting the vmlinux
# through its PVH entry point. No auto-kernel-cmdline: QEMU would append after
# " -- ", i.e. to init's arguments. microvm has no i8042 of its own; with one
# added, reboot=k resets the VM and -no-reboot makes QEMU exit, as ember does
# (without it the kernel falls back to a BIOS restart and QEMU never exits).
# shellcheck disable=SC2054 # the commas belong to QEMU's options
qemu_cmd=(qemu-system-x86_64
    -M microvm,acpi=off,x-option-roms=off,auto-kernel-cmdline=off,rtc=off
    -device i8042 -accel kvm -cpu "$qemu_cpu" -m 128 -smp 1
    -nodefaults -no-user-config -display none -serial stdio -no-reboot
    -kernel "$kernel" -initrd "$initrd" -append "$boot_args")

json=$tmp/ember.json
cat >"$json" <<JSON
{
  "boot-source": {
    "kernel_image_path": "$kernel",
    "initrd_path": "$initrd",
    "boot_args": "$boot_args"
  },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 128 }
}
JSON
ember_cmd=(build/ember --no-api --config-file "$json" --boot-timer)

usec() { local t=${1/./}; echo $((10#$t)); }

# One boot: prints the microseconds until the marker line, or fails.
# The console goes through a FIFO that this shell reads line by line.
boot_once() {
    local log=$tmp/$1.$2.log
    shift 2
    local fifo=$tmp/console
    rm -f "$fifo"
    mkfifo "$fifo"
    local t0 t1='' line pid
    t0=$EPOCHREALTIME
    "$@" </dev/null >"$fifo" 2>"$log.err" &
    pid=$!
    exec 3<"$fifo"
    local deadline=$(($(usec "$t0") + per_boot * 1000000)) left
    while :; do
        left=$(((deadline - $(usec "$EPOCHREALTIME")) / 1000))
        ((left > 0)) || break
        IFS= read -r -t "$((left / 1000)).$(printf %03d $((left % 1000)))" -u 3 line || break
        printf '%s\n' "$line" >>"$log"
        if [[ "${line%$'\r'}" == "$marker" ]]; then
            t1=$EPOCHREALTIME
            break
        fi
    done
    # After the marker, let the guest finish (it resets and the VMM exits) so
    # boots do not overlap; keep the rest of the console for the log.
    [[ -z "$t1" ]] || timeout 30 cat <&3 >>"$log" || true
    exec 3<&-
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [[ -n "$t1" ]] || return 1
    echo $(($(usec "$t1") - $(usec "$t0")))
}

declare -A times=() ok=()
for v in "${vmms[@]}"; do
    times[$v]=""
    ok[$v]=0
    # One unmeasured boot each: the first read of the images is colder.
    case $v in
    qemu) boot_once qemu warmup "${qemu_cmd[@]}" >/dev/null || true ;;
    ember) boot_once ember warmup "${ember_cmd[@]}" >/dev/null || true ;;
    esac
done
for ((i = 1; i <= boots; i++)); do
    for v in "${vmms[@]}"; do
        if [[ $v == qemu ]]; then cmd=("${qemu_cmd[@]}"); else cmd=("${ember_cmd[@]}"); fi
        if us=$(boot_once "$v" "$i" "${cmd[@]}"); then
            times[$v]+="$us "
            ok[$v]=$((ok[$v] + 1))
        else
            echo "linux-boot: $v boot $i did not reach /init; console:" >&2
            tail -n 15 "$tmp/$v.$i.log" "$tmp/$v.$i.log.err" >&2 2>/dev/null || true
        fi
    done
done

ms() { printf '%d.%d' $(($1 / 1000)) $((($1 % 1000) / 100)); }
declare -A median=()
printf '%-6s %10s %10s %10s %10s\n' VMM 'median ms' 'min ms' 'max ms' 'boots ok'
for v in "${vmms[@]}"; do
    if ((ok[$v] == 0)); then
        printf '%-6s %10s %10s %10s %10s\n' "$v" - - - "0/$boots"
        continue
    fi
    mapfile -t sorted < <(tr ' ' '\n' <<<"${times[$v]}" | grep . | sort -n)
    n=${#sorted[@]}
    if ((n % 2)); then m=${sorted[n / 2]}; else m=$(((sorted[n / 2 - 1] + sorted[n / 2]) / 2)); fi
    median[$v]=$m
    printf '%-6s %10s %10s %10s %10s\n' "$v" "$(ms "$m")" "$(ms "${sorted[0]}")" \
        "$(ms "${sorted[n - 1]}")" "${ok[$v]}/$boots"
done
if [[ -n "${median[qemu]:-}" && -n "${median[ember]:-}" ]]; then
    r=$((median[ember] * 1000 / median[qemu]))
    printf 'ratio ember/qemu (median): %d.%03d\n' $((r / 1000)) $((r % 1000))
fi
echo "qemu: ${qemu_cmd[*]:0:15}"
echo "boot_args: $boot_args"
