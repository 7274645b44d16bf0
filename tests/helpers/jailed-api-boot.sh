#!/usr/bin/env bash
# jailed-api-boot.sh KERNEL INITRD|"" BOOT_ARGS VCPUS MEM_MIB: the whole Firecracker-style
# flow under the jailer. Builds a jail in a fresh directory under /tmp (the libraries, the
# kernel and initrd copied in), starts build/ember-jailer with ember's API socket inside the
# jail, configures boot-source and machine-config and sends InstanceStart through the API,
# then waits for the guest to end ember. Prints ember's output; exits with ember's status.
# Runs the same directly and inside the emulated KVM host (tests/vmhost/run -- ...).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
kernel=$1 initrd=$2 boot_args=$3 vcpus=$4 mem=$5
id=boot-$$
base=$(mktemp -d /tmp/ember-jail.XXXXXX)
jail=$base/ember/$id/root
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	rm -rf "$base"
}
trap cleanup EXIT

"$repo/jailer/jail-libs.sh" "$jail" "$repo/build/ember"
install -m 0644 "$kernel" "$jail/kernel"
initrd_json=
if [ -n "$initrd" ]; then
	install -m 0644 "$initrd" "$jail/initrd"
	initrd_json=', "initrd_path": "/initrd"'
fi
"$repo/build/ember-jailer" --id "$id" --exec-file "$repo/build/ember" --uid 10000 --gid 10000 \
	--chroot-base-dir "$base" -- --api-sock /api.sock --boot-timer >"$base/out" 2>&1 &
pid=$!
for _ in $(seq 500); do [ -S "$jail/api.sock" ] && break; sleep 0.01; done

put() { # put PATH JSON: fails unless the API answers 204
	local code
	code=$(curl -s --max-time 10 --unix-socket "$jail/api.sock" -X PUT \
		-H 'Content-Type: application/json' -d "$2" -o "$base/reply" -w '%{http_code}' \
		"http://localhost$1") || true
	if [ "$code" != 204 ]; then
		echo "PUT $1: HTTP $code: $(cat "$base/reply" 2>/dev/null)"
		cat "$base/out"
		exit 1
	fi
}
args_json=${boot_args//\\/\\\\}
args_json=${args_json//\"/\\\"}
put /boot-source "{\"kernel_image_path\": \"/kernel\", \"boot_args\": \"$args_json\"$initrd_json}"
put /machine-config "{\"vcpu_count\": $vcpus, \"mem_size_mib\": $mem}"
put /actions '{"action_type": "InstanceStart"}'
status=0
wait "$pid" || status=$?
pid=
cat "$base/out"
exit "$status"
