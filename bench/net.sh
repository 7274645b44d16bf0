#!/usr/bin/env bash
# virtio-net throughput (TCP, busybox nc, each way) and ping round-trip time, ember against
# QEMU's microvm with virtio-net-device on the same kind of TAP, the same guest kernel,
# initramfs and guest script (tests/net/l1-net.sh bench-*), runs interleaved.
#   bench/net.sh [-n RUNS] [-m MIB]
# Needs a standard /dev/kvm; on a PVM host it re-runs itself inside the emulated KVM host.
# Prints each run's BENCH line and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3 mib=16
while (($#)); do
	case "$1" in
	-n) runs=$2; shift 2 ;;
	-m) mib=$2; shift 2 ;;
	*) echo "usage: $0 [-n RUNS] [-m MIB]" >&2; exit 2 ;;
	esac
done

. tests/lib/host-kind.sh
if [[ "$(ember_host_kind)" == vmhost ]]; then
	export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-590}
	exec tests/vmhost/run -- bench/net.sh -n "$runs" -m "$mib"
fi

dir=$PWD/build/bench-net.$$
trap 'rm -rf "$dir"' EXIT
results=()
for ((i = 1; i <= runs; i++)); do
	for vmm in ember qemu; do
		rm -rf "$dir" && mkdir -p "$dir"
		line=$(tests/net/l1-net.sh "$dir" "bench-$vmm" "$mib" 2>/dev/null | grep '^BENCH' || true)
		echo "${line:-BENCH vmm=$vmm failed}"
		results+=("$line")
	done
done
printf '%s\n' "${results[@]}" | awk '
	function median(a, n,   i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	/^BENCH/ {
		split($2, v, "="); vmm = v[2]
		for (f = 3; f <= NF; f++) { split($f, kv, "="); k = vmm SUBSEP kv[1]; cnt[k]++; val[k, cnt[k]] = kv[2]; keys[kv[1]] = 1 }
		vmms[vmm] = 1
	}
	END {
		for (vmm in vmms) {
			line = "median " vmm ":"
			for (key in keys) {
				k = vmm SUBSEP key; n = cnt[k]
				for (i = 1; i <= n; i++) a[i] = val[k, i]
				line = line " " key "=" (n ? median(a, n) : "n/a")
			}
			print line
		}
	}'
