#!/usr/bin/env bash
# Row 1 of bench/README.md: ember start to the test guest's boot-timer write, on this
# host's /dev/kvm. Prints the median and spread of N runs (default 50) of:
#   boot-timer: the Guest-boot-time ember logs (from ember's main() to the guest's write)
#   process:    the whole ember process, exec to exit, measured outside it
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
mem=${EMBER_BENCH_MEM_MIB:-128}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/vm.json" <<JSON
{ "boot-source": { "kernel_image_path": "build/tests/guest.elf", "boot_args": "console=ttyS0" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": $mem } }
JSON
for _ in $(seq 3); do build/ember --no-api --config-file "$tmp/vm.json" >/dev/null 2>&1; done # warm caches
: >"$tmp/boot" && : >"$tmp/proc"
for _ in $(seq "$runs"); do
	t0=$(date +%s%N)
	out=$(build/ember --no-api --config-file "$tmp/vm.json" --boot-timer 2>&1)
	t1=$(date +%s%N)
	us=$(sed -n 's/.*Guest-boot-time = *\([0-9]*\) us.*/\1/p' <<<"$out")
	[ -n "$us" ] || { echo "run failed: $out" >&2; exit 1; }
	echo "$us" >>"$tmp/boot"
	echo $(((t1 - t0) / 1000)) >>"$tmp/proc"
done
. bench/lib.sh
read -r bmed bmin bmax < <(stats_ms "$tmp/boot")
read -r pmed pmin pmax < <(stats_ms "$tmp/proc")
printf '%-44s %8s %8s %8s\n' "test guest, $runs runs, $mem MiB" median min max
printf '%-44s %8s %8s %8s\n' "  ember main() to boot-timer write (ms)" "$bmed" "$bmin" "$bmax"
printf '%-44s %8s %8s %8s\n' "  whole ember process, exec to exit (ms)" "$pmed" "$pmin" "$pmax"
