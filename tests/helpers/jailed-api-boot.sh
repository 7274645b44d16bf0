#!/usr/bin/env bash
# jailed-api-boot.sh KERNEL INITRD|"" BOOT_ARGS VCPUS MEM_MIB: the whole Firecracker-style
# flow under the jailer. Builds a jail in a fresh directory under /tmp (the kernel and initrd
# copied in), starts build/ember-jailer with ember's API socket inside the
# jail, configures boot-source and machine-config and sends InstanceStart through the API,
# then waits for the guest to end ember. Prints ember's output; exits with ember's status.
# With EMBER_JAIL_VSOCK=1 the VM also gets a vsock at /v.sock inside the jail: a host listener
# waits at <jail>/v.sock_5001 (lines HOST-G2H-...), and once the guest listens on port 5000
# a line goes there through <jail>/v.sock (HOST-H2G-REPLY=...).
# Runs the same directly and inside the emulated KVM host (tests/vmhost/run -- ...).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
kernel=$1 initrd=$2 boot_args=$3 vcpus=$4 mem=$5
id=boot-$$
base=$(mktemp -d /tmp/ember-jail.XXXXXX)
jail=$base/ember/$id/root
pid= listener=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	if [ -n "$listener" ]; then kill "$listener" 2>/dev/null || true; fi
	rm -rf "$base"
}
trap cleanup EXIT

# Nothing but the kernel goes in: ember is static (a SANITIZE=1 build gets its libraries).
mkdir -p "$jail"
. "$repo/tests/lib/jail-libs.sh"
jail_libs "$jail" "$repo/build/ember"
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
if [ "${EMBER_JAIL_VSOCK:-}" = 1 ]; then
	put /vsock '{"guest_cid": 3, "uds_path": "/v.sock"}'
	# The jailed ember (uid 10000) connects here for the guest.
	"$repo/build/ember-vsock" uds-listen -n 1 "$jail/v.sock_5001" >"$base/g2h" 2>&1 &
	listener=$!
	for _ in $(seq 100); do [ -S "$jail/v.sock_5001" ] && break; sleep 0.05; done
	chown 10000:10000 "$jail/v.sock_5001"
fi
put /actions '{"action_type": "InstanceStart"}'
if [ "${EMBER_JAIL_VSOCK:-}" = 1 ]; then
	for _ in $(seq 300); do
		reply=$(echo jailed-h2g | "$repo/build/ember-vsock" uds-connect "$jail/v.sock" 5000 2>/dev/null) &&
			break
		sleep 0.2
	done
	echo "HOST-H2G-REPLY=${reply:-}"
fi
status=0
wait "$pid" || status=$?
pid=
cat "$base/out"
exit "$status"
