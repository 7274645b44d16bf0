#!/usr/bin/env bash
# Boots Linux through the API with a guest command that would run for a minute, sends
# Ctrl+Alt+Del through the API, and expects the guest to power off at once.
#   tests/api-linux-ctrl-alt-del.sh WORKDIR
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
cp build/guest/rootfs.ext4 "$dir/rootfs.ext4"
sock=$(mktemp -u /tmp/ember-api-XXXXXX.sock) # not on the emulated host's 9p share
build/ember --api-sock "$sock" >"$dir/console" 2>&1 &
pid=$!
for _ in $(seq 500); do [ -S "$sock" ] && break; sleep 0.01; done
tests/fc-getting-started.sh "$sock" "$PWD/build/guest/vmlinux" "$dir/rootfs.ext4" \
	"console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet -- echo guest wait''ing; sleep 60" 1 128
for _ in $(seq 600); do grep -q "guest waiting" "$dir/console" && break; sleep 0.1; done
start=$(date +%s)
curl -s --unix-socket "$sock" -X PUT -d '{"action_type": "SendCtrlAltDel"}' -w 'SendCtrlAltDel: %{http_code}\n' http://localhost/actions
status=0
wait "$pid" || status=$?
cat "$dir/console"
echo "ember exited with $status after $(($(date +%s) - start)) s"
exit "$status"
