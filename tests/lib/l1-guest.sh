# shellcheck shell=bash
# Sourced by the emulated-host scripts (tests/net/l1-net.sh, tests/vsock/l1-vsock.sh) that
# boot the Linux guest with a shell script on a raw drive. They set D (the run's directory,
# inside the repository), ROOT (the repository) and ARGS (the kernel's console arguments).

# script_drive: the guest's script, from stdin, goes on a raw drive (/dev/vda): the kernel
# passes init only 31 words.
script_drive() {
	{
		cat
		echo 'exit 0'
	} >"$D/script.sh"
	truncate -s 64K "$D/script.sh"
}

# guest_config MEM DEVICE_JSON: $D/vm.json for that guest, with MEM MiB, the script drive
# and DEVICE_JSON (one more top-level member, such as "vsock": {...}).
guest_config() {
	cat >"$D/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$ROOT/build/guest/vmlinux",
                   "initrd_path": "$ROOT/build/guest/initramfs.cpio.gz",
                   "boot_args": "$ARGS -- sh /dev/vda" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": $1 },
  "drives": [ { "drive_id": "script", "path_on_host": "$D/script.sh", "is_root_device": false, "is_read_only": true } ],
  $2
}
JSON
}
