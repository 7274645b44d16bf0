# Shared by the bats suites: paths, config writers and the ember runner.
EMBER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EMBER="$EMBER_ROOT/build/ember"
TEST_GUEST="$EMBER_ROOT/build/tests/guest.elf"
GUEST_VMLINUX="$EMBER_ROOT/build/guest/vmlinux"
GUEST_BZIMAGE="$EMBER_ROOT/build/guest/bzImage"
GUEST_INITRAMFS="$EMBER_ROOT/build/guest/initramfs.cpio.gz"
# Linux guests read their console on ttyS0; the rest is Firecracker's usual set.
LINUX_ARGS="console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet"

# A scratch directory inside the repository, so that the emulated KVM host (which sees
# the repository at the same path) can read the files written here.
scratch_dir() {
	local d="$EMBER_ROOT/build/test-tmp/${BATS_TEST_FILENAME##*/}-$BATS_TEST_NUMBER-$$"
	rm -rf "$d" && mkdir -p "$d" && echo "$d"
}

# write_config FILE KERNEL INITRD|"" BOOT_ARGS VCPUS MEM_MIB
write_config() {
	local file=$1 kernel=$2 initrd=$3 args=$4 vcpus=$5 mem=$6 initrd_json=""
	[ -n "$initrd" ] && initrd_json=", \"initrd_path\": \"$initrd\""
	cat >"$file" <<JSON
{
  "boot-source": { "kernel_image_path": "$kernel", "boot_args": "$args"$initrd_json },
  "machine-config": { "vcpu_count": $vcpus, "mem_size_mib": $mem }
}
JSON
}
