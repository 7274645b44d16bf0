#!/usr/bin/env bash
# The curl sequence of Firecracker's getting-started guide, with only the socket path and
# the binary changed: configure a microVM through the API and start it.
#   tests/fc-getting-started.sh SOCKET KERNEL ROOTFS BOOT_ARGS [VCPUS] [MEM_MIB]
set -euo pipefail
sock=$1 kernel=$2 rootfs=$3 boot_args=$4 vcpus=${5:-2} mem=${6:-256}

put() { # put PATH JSON: fails unless the answer is 204
	local code
	code=$(curl --unix-socket "$sock" -s -o /dev/stderr -w '%{http_code}' -X PUT "http://localhost/$1" \
		-H 'Accept: application/json' -H 'Content-Type: application/json' -d "$2")
	[ "$code" = 204 ] || { echo "PUT /$1 answered $code" >&2; return 1; }
}

put boot-source "{
	\"kernel_image_path\": \"$kernel\",
	\"boot_args\": \"$boot_args\"
}"
put drives/rootfs "{
	\"drive_id\": \"rootfs\",
	\"path_on_host\": \"$rootfs\",
	\"is_root_device\": true,
	\"is_read_only\": false
}"
put machine-config "{
	\"vcpu_count\": $vcpus,
	\"mem_size_mib\": $mem
}"
put actions '{ "action_type": "InstanceStart" }'
