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

. bench/lib.sh
interleaved_medians tests/net/l1-net.sh "$runs" "$mib"
