#!/usr/bin/env bash
# make demo: boots the guest kernel and initramfs under ember and shows its console.
# With a terminal you get a shell in the guest (exit it to stop the VM); without one the
# guest runs a short script and powers off. Where /dev/kvm cannot run a standard Linux
# guest (PVM, or no KVM), the VM runs inside the emulated KVM host instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib/host-kind.sh

mkdir -p build/demo
args="console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet"
kind=$(ember_host_kind)
# The emulated KVM host runs its command without a terminal, so the guest there runs a
# short script instead of an interactive shell.
if [ ! -t 0 ] || [ "$kind" = vmhost ]; then
	args+=" -- echo; echo Hello from a Linux guest booted by ember:; uname -a; echo CPUs: \$(nproc);"
	args+=" grep MemTotal /proc/meminfo"
fi
cat >build/demo/vm.json <<JSON
{
  "boot-source": {
    "kernel_image_path": "build/guest/vmlinux",
    "initrd_path": "build/guest/initramfs.cpio.gz",
    "boot_args": "$args"
  },
  "machine-config": { "vcpu_count": 2, "mem_size_mib": 256 }
}
JSON

if [ "$kind" = vmhost ]; then
	echo "demo: this host's /dev/kvm cannot run a standard Linux guest (it is PVM or missing);"
	echo "demo: booting the VM inside the emulated KVM host (QEMU TCG with SVM), which takes a few seconds."
	rootfs/build-kernel.sh vmhost
fi
echo "demo: build/ember --no-api --config-file build/demo/vm.json --boot-timer"
exec_status=0
ember_on_linux_host build/ember --no-api --config-file build/demo/vm.json --boot-timer || exec_status=$?
echo "demo: ember exited with status $exec_status"
exit "$exec_status"
