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

# boot_script VCPUS MEM SMT: boots the vmlinux with the shell script on stdin, from a
# read-only drive (init runs "sh /dev/vda"; nothing of the script is on the command line).
boot_script() {
	{
		cat
		echo 'exit 0'
	} >"$D/script.sh"
	truncate -s 64K "$D/script.sh"
	cat >"$D/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$GUEST_VMLINUX", "initrd_path": "$GUEST_INITRAMFS",
                   "boot_args": "$LINUX_ARGS -- sh /dev/vda" },
  "machine-config": { "vcpu_count": $1, "mem_size_mib": $2, "smt": $3 },
  "drives": [ { "drive_id": "script", "path_on_host": "$D/script.sh", "is_root_device": false, "is_read_only": true } ]
}
JSON
	run ember_on_linux_host timeout 240 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
}

# The guest's report of its CPUs and memory.
topology() {
	cat <<'SH'
echo NPROC=$(nproc)
echo SIBLINGS=$(cat /sys/devices/system/cpu/cpu0/topology/thread_siblings_list)
echo CORES=$(cat /sys/devices/system/cpu/cpu*/topology/core_id | sort -u | wc -l)
grep MemTotal /proc/meminfo
echo HIGH=$(awk '/zone +Normal/ { z = 1 } z && /present/ { print $2; exit }' /proc/zoneinfo)
grep 'System RAM' /proc/iomem
echo VENDOR=$(awk '/^vendor_id/ { print $3; exit }' /proc/cpuinfo)
echo TOPOEXT=$(grep -m1 '^flags' /proc/cpuinfo | grep -cw topoext)
SH
}

# memtotal_kb: MemTotal from $output.
memtotal_kb() {
	sed -n 's/.*MemTotal: *\([0-9]*\) kB.*/\1/p' <<<"$output" | head -1
}

@test "Linux (vmlinux) boots from the initramfs to userspace and its output reaches the console" {
	boot_linux "$GUEST_VMLINUX" 1 128 "echo $(unechoed 'hello from guest userspace'); uname -sm"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from guest userspace"* ]]
	[[ "$output" == *"Linux x86_64"* ]]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	[[ "$output" =~ Guest-boot-time\ =\ +[0-9]+\ us ]]
}

@test "Linux (bzImage) boots to userspace too" {
	boot_linux "$GUEST_BZIMAGE" 1 128 "echo $(unechoed 'bzimage userspace ok')"
	[ "$status" -eq 0 ]
	[[ "$output" == *"bzimage userspace ok"* ]]
	# init ran the command and powered off: not a panic (panic=1 also ends with status 0).
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	[[ "$output" != *"Kernel panic"* ]]
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

@test "4 vCPUs, smt off, 4096 MiB: four cores of one thread each; RAM above the 3 GiB gap is the kernel's Normal zone" {
	boot_script 4 4096 false < <(topology)
	[ "$status" -eq 0 ]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	[ "$(value NPROC)" = 4 ]
	[ "$(value SIBLINGS)" = 0 ]
	[ "$(value CORES)" = 4 ]
	kb=$(memtotal_kb)
	[ "$kb" -le $((4096 * 1024)) ]
	[ "$kb" -ge $((4096 * 1024 * 90 / 100)) ]
	# e820 as the kernel took it: RAM up to 3 GiB, then from 4 GiB for the last 1 GiB.
	[[ "$output" == *"00100000-bfffffff : System RAM"* ]]
	[[ "$output" == *"100000000-13fffffff : System RAM"* ]]
	[ "$(value HIGH)" -ge $((1024 * 1024 / 4 * 95 / 100)) ] # pages of 4 KiB in that 1 GiB
}

@test "4 vCPUs with smt: two cores of two threads each, where the guest's CPU lets Linux see threads" {
	boot_script 4 256 true < <(topology)
	[ "$status" -eq 0 ]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	[ "$(value NPROC)" = 4 ]
	high=$(value HIGH)
	[ "${high:-0}" -eq 0 ] # 256 MiB: nothing above 4 GiB
	# Linux 6.1 on an AMD CPU reads threads only from leaf 0x8000001e, and only with
	# TOPOEXT; without it (the emulated host's qemu64) every vCPU is a core of its own.
	# boot_direct.bats checks the CPUID values themselves on any host.
	if [ "$(value VENDOR)" = AuthenticAMD ] && [ "$(value TOPOEXT)" = 0 ]; then
		echo "AMD CPU without TOPOEXT: Linux sees no threads"
		[ "$(value SIBLINGS)" = 0 ]
		[ "$(value CORES)" = 4 ]
	else
		[ "$(value SIBLINGS)" = 0-1 ]
		[ "$(value CORES)" = 2 ]
	fi
}

@test "the guest's reboot makes ember exit 0" {
	boot_linux "$GUEST_VMLINUX" 1 128 "echo $(unechoed 'rebooting now'); reboot -f; sleep 30; echo $(unechoed not-reached)"
	[ "$status" -eq 0 ]
	[[ "$output" == *"rebooting now"* ]]
	[[ "$output" != *"not-reached"* ]]
	[[ "$output" != *"EMBER-EXIT-STATUS"* ]]
}

@test "a guest kernel panic ends the VM" {
	# No init to run and no root device: the kernel panics, and panic=1 reboots it.
	boot_linux "$GUEST_VMLINUX" 1 128 "echo $(unechoed not-reached)" "rdinit=/does-not-exist"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Kernel panic"* ]]
	[[ "$output" != *"not-reached"* ]]
}

@test "the API boots Linux with its root on /dev/vda, Firecracker's getting-started way" {
	run ember_on_linux_host tests/api-linux-boot.sh "$D" "echo $(unechoed 'api boot ok'); echo $(unechoed CMDLINE)=\$(cat /proc/cmdline); mount | grep -w ext4"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"state":"Running"'* ]]
	[[ "$output" == *"api boot ok"* ]]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	[[ "$output" == *"CMDLINE="*"root=/dev/vda rw"* ]]
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
