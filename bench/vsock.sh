#!/usr/bin/env bash
# virtio-vsock: connection set-up latency (host connect until the guest accepted: Firecracker's
# CONNECT until OK), round trip of one byte, stream throughput each way (MIB MiB against a
# sink or a source), and a guest-initiated connect, all with build/ember-vsock on both ends
# (tests/vsock/l1-vsock.sh bench-*). The peer: QEMU's microvm with vhost-vsock-device, the
# same guest kernel, initramfs and script, runs interleaved.
#   bench/vsock.sh [-n RUNS] [-m MIB] [-p PINGS]
# Needs a standard /dev/kvm; on a PVM host it re-runs itself inside the emulated KVM host.
# Prints each run's BENCH line and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3 mib=64 pings=50
while (($#)); do
	case "$1" in
	-n) runs=$2; shift 2 ;;
	-m) mib=$2; shift 2 ;;
	-p) pings=$2; shift 2 ;;
	*) echo "usage: $0 [-n RUNS] [-m MIB] [-p PINGS]" >&2; exit 2 ;;
	esac
done

. tests/lib/host-kind.sh
if [[ "$(ember_host_kind)" == vmhost ]]; then
	export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-590}
	exec tests/vmhost/run -- bench/vsock.sh -n "$runs" -m "$mib" -p "$pings"
fi

dir=$PWD/build/bench-vsock.$$
trap 'rm -rf "$dir"' EXIT
results=()
for ((i = 1; i <= runs; i++)); do
	for vmm in ember qemu; do
		rm -rf "$dir" && mkdir -p "$dir"
		line=$(EMBER_VSOCK_PINGS=$pings tests/vsock/l1-vsock.sh "$dir" "bench-$vmm" "$mib" 2>/dev/null |
			grep '^BENCH' || true)
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
		for (f = 3; f <= NF; f++) {
			split($f, kv, "=")
			if (kv[2] == "") continue
			k = vmm SUBSEP kv[1]; cnt[k]++; val[k, cnt[k]] = kv[2]; keys[kv[1]] = 1
		}
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
