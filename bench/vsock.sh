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

. bench/lib.sh
export EMBER_VSOCK_PINGS=$pings
interleaved_medians tests/vsock/l1-vsock.sh "$runs" "$mib"
