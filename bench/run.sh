#!/usr/bin/env bash
# make bench: every benchmark, one after the other; bench/README.md keeps the latest table.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== 1. ember start to the test guest's boot-timer write (this host's /dev/kvm)"
bench/start-test-guest.sh "${EMBER_BENCH_RUNS:-50}"
echo
echo "== 2. Linux boot to /init in the emulated KVM host: ember vs QEMU microvm"
bench/linux-boot.sh
echo
echo "== 3/4. virtio-blk from inside a Linux guest: Sync vs Async vs QEMU virtio-blk"
bench/blk.sh -t 3 -r 3
echo
echo "== 5. start until the API socket accepts: directly vs through ember-jailer"
bench/jailer.sh 50
echo
echo "== 6. the API: start to socket, InstanceStart to boot timer, request latency, memory, creation rate"
bench/api.py 30
echo
echo "== 7. virtio-net: TCP throughput each way and ping latency, ember vs QEMU virtio-net on a TAP"
bench/net.sh -n 3 -m 8
echo
echo "== 8-11. virtio-vsock: connect latency each way, throughput each way, ember vs QEMU vhost-vsock"
bench/vsock.sh -n 3 -m 64
echo
echo "== 12. snapshot create: Full of a 256 MiB guest that touched 20 MiB, Diff against the pages dirtied"
bench/snapshot-create.sh 5
echo
echo "== 13. snapshot load to vCPUs running, File and Uffd, against a cold start (this host's /dev/kvm)"
bench/snapshot-load.sh 30
echo
echo "== 14. memory per clone: 8 clones of one snapshot, the pages each guest wrote against its private memory"
bench/snapshot-clones.sh 8 256 4096
echo
echo "== 15. a Linux guest's snapshot load until it answers over vsock: against a cold boot and QEMU's -incoming"
bench/snapshot-linux.sh -n 5
echo
echo "== 16. ember-run: a template run of true against a cold one, phases, runs/s, bwrap as the floor"
bench/ember-run.sh -n 10 -c 3 -t 16
