#!/usr/bin/env bash
# Boots Linux through the API, Firecracker's getting-started way, with the root filesystem
# on /dev/vda, and waits for the guest to power off. Run where /dev/kvm runs Linux guests.
#   tests/api-linux-boot.sh WORKDIR 'COMMAND FOR THE GUEST'
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 cmd=$2
cp build/guest/rootfs.ext4 "$dir/rootfs.ext4"
# A Unix socket cannot live on the emulated host's 9p share: keep it in /tmp.
sock=$(mktemp -u /tmp/ember-api-XXXXXX.sock)
build/ember --api-sock "$sock" --boot-timer >"$dir/console" 2>&1 &
pid=$!
for _ in $(seq 500); do [ -S "$sock" ] && break; sleep 0.01; done
tests/fc-getting-started.sh "$sock" "$PWD/build/guest/vmlinux" "$dir/rootfs.ext4" \
	"console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet -- $cmd" 1 128
curl -s --unix-socket "$sock" http://localhost/ && echo
status=0
timeout 120 tail --pid="$pid" -f /dev/null || status=$?
wait "$pid" || status=$?
cat "$dir/console"
echo "ember exit status: $status"
exit "$status"
