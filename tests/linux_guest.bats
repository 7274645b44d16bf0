#!/usr/bin/env bats
# A real Linux guest (build/guest/vmlinux or bzImage + initramfs) booted by ember where
# /dev/kvm can run it: directly on a hardware-KVM host, in the emulated KVM host here.

load lib/common
source "$EMBER_ROOT/tests/lib/host-kind.sh"

setup_file() {
	require_linux_host "$GUEST_VMLINUX" "$GUEST_BZIMAGE" "$GUEST_INITRAMFS" || return 1
	export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-300}
}

setup() {
	D=$(scratch_dir)
}

teardown() {
	rm -rf "$D"
}

# boot_linux KERNEL VCPUS MEM "ARGS AFTER --" [extra boot args]: runs ember on the
# Linux-capable host and leaves its console and log in $output, its status in $status.
boot_linux() {
	local kernel=$1 vcpus=$2 mem=$3 cmd=$4 extra=${5:-}
	write_config "$D/vm.json" "$kernel" "$GUEST_INITRAMFS" "$LINUX_ARGS $extra -- $cmd" "$vcpus" "$mem"
	run ember_on_linux_host timeout 120 "$EMBER" --no-api --config-file "$D/vm.json" --boot-timer
	echo "$output"
}

@test "Linux (vmlinux) boots from the initramfs to userspace and its output reaches the console" {
	boot_linux "$GUEST_VMLINUX" 1 128 'echo hello from guest userspace; uname -sm'
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from guest userspace"* ]]
	[[ "$output" == *"Linux x86_64"* ]]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	[[ "$output" =~ Guest-boot-time\ =\ +[0-9]+\ us ]]
}

@test "Linux (bzImage) boots to userspace too" {
	boot_linux "$GUEST_BZIMAGE" 1 128 'echo bzimage userspace ok'
	[ "$status" -eq 0 ]
	[[ "$output" == *"bzimage userspace ok"* ]]
}

@test "1 vCPU, 128 MiB: nproc is 1 and MemTotal matches mem_size_mib" {
	boot_linux "$GUEST_VMLINUX" 1 128 'echo NPROC=$(nproc); grep MemTotal /proc/meminfo'
	[ "$status" -eq 0 ]
	[[ "$output" == *"NPROC=1"* ]]
	kb=$(sed -n 's/.*MemTotal: *\([0-9]*\) kB.*/\1/p' <<<"$output" | head -1)
	# MemTotal is RAM minus what the kernel keeps for itself: within 20% below, never above.
	[ "$kb" -le $((128 * 1024)) ]
	[ "$kb" -ge $((128 * 1024 * 80 / 100)) ]
}

@test "2 vCPUs, 256 MiB: nproc is 2 and MemTotal matches mem_size_mib" {
	boot_linux "$GUEST_VMLINUX" 2 256 'echo NPROC=$(nproc); grep MemTotal /proc/meminfo'
	[ "$status" -eq 0 ]
	[[ "$output" == *"NPROC=2"* ]]
	kb=$(sed -n 's/.*MemTotal: *\([0-9]*\) kB.*/\1/p' <<<"$output" | head -1)
	[ "$kb" -le $((256 * 1024)) ]
	[ "$kb" -ge $((256 * 1024 * 85 / 100)) ]
}

@test "the guest's reboot makes ember exit 0" {
	boot_linux "$GUEST_VMLINUX" 1 128 'echo rebooting now; reboot -f; sleep 30; echo not-reached'
	[ "$status" -eq 0 ]
	[[ "$output" == *"rebooting now"* ]]
	[[ "$output" != *"not-reached"* ]]
	[[ "$output" != *"EMBER-EXIT-STATUS"* ]]
}

@test "a guest kernel panic ends the VM" {
	# No init to run and no root device: the kernel panics, and panic=1 reboots it.
	boot_linux "$GUEST_VMLINUX" 1 128 'echo not-reached' "rdinit=/does-not-exist"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Kernel panic"* ]]
	[[ "$output" != *"not-reached"* ]]
}

@test "the API boots Linux with its root on /dev/vda, Firecracker's getting-started way" {
	run ember_on_linux_host tests/api-linux-boot.sh "$D" 'echo api boot ok; cat /proc/cmdline; mount | grep -w ext4'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"state":"Running"'* ]]
	[[ "$output" == *"api boot ok"* ]]
	[[ "$output" == *"root=/dev/vda rw"* ]]
	[[ "$output" == *" on / type ext4 (rw"* ]]
	[[ "$output" =~ Guest-boot-time\ =\ +[0-9]+\ us ]]
}

@test "SendCtrlAltDel through the API powers the Linux guest off" {
	run ember_on_linux_host tests/api-linux-ctrl-alt-del.sh "$D"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"SendCtrlAltDel: 204"* ]]
	[[ "$output" == *"Ctrl+Alt+Del, powering off"* ]]
	secs=$(sed -n 's/.*ember exited with 0 after \([0-9]*\) s.*/\1/p' <<<"$output")
	[ "$secs" -lt 30 ] # long before the guest's 60 s command would have ended
}
