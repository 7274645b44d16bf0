#!/usr/bin/env bats
# virtio-vsock under a real Linux guest where /dev/kvm can boot one (directly on a hardware
# KVM host, in the emulated KVM host here), driven by tests/vsock/l1-vsock.sh with
# build/ember-vsock on both ends: echo each way through Firecracker's Unix-socket protocol,
# refused connects, 32 concurrent connections each way, a host reader that pauses, the
# guest rebooting under an open connection, and the guest resetting the device.

load lib/common
source "$EMBER_ROOT/tests/lib/host-kind.sh"

# Per connection, 32 connections each way at once: the transfers take about 25 s in the
# emulated host, the whole test about 60 s.
VSOCK_MIB=${EMBER_VSOCK_MIB:-8}
VSOCK_CONNS=${EMBER_VSOCK_CONNS:-32} # tests/vsock/l1-vsock.sh reads it too

setup_file() {
	require_linux_host "$GUEST_VMLINUX" "$GUEST_INITRAMFS" "$EMBER_ROOT/build/ember-vsock" ||
		return 1
	gzip -dc "$GUEST_INITRAMFS" | cpio -t --quiet 2>/dev/null | grep -qx bin/ember-vsock || {
		echo "$GUEST_INITRAMFS has no bin/ember-vsock: run 'make rootfs'" >&2
		return 1
	}
	export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-590}
}

setup() {
	D=$(scratch_dir)
}

teardown() {
	rm -rf "$D"
}

vsock_run() { # vsock_run MODE [MIB]
	run ember_on_linux_host "$EMBER_ROOT/tests/vsock/l1-vsock.sh" "$D" "$@"
	show_output
}

@test "echo each way: host uds-connect to a guest listener, guest connect 2 P to <uds_path>_P; 1 MiB SHA-256 intact" {
	vsock_run echo
	[ "$status" -eq 0 ]
	[ "$(value HOST-EMBER-STATUS)" = 0 ]
	[ "$(value HOST-H2G-RC)" = 0 ]
	[ "$(value HOST-H2G-REPLY)" = host-to-guest-hello ]
	[ "$(value GUEST-G2H-RC)" = 0 ]
	[ "$(value GUEST-G2H-REPLY)" = guest-to-host-hello ]
	local a b
	a=$(value HOST-H2G-SENT-SHA) b=$(value HOST-H2G-ECHO-SHA)
	[ ${#a} -eq 64 ]
	[ "$a" = "$b" ]
	a=$(value GUEST-G2H-SENT-SHA) b=$(value GUEST-G2H-ECHO-SHA)
	[ ${#a} -eq 64 ]
	[ "$a" = "$b" ]
}

@test "a connect to a port nobody listens on fails within a second each way; the device works after" {
	vsock_run refused
	[ "$status" -eq 0 ]
	[ "$(value HOST-EMBER-STATUS)" = 0 ]
	# Host side: ember closes the socket instead of answering OK.
	[ "$(value HOST-REFUSED-RC)" = 1 ] # ember-vsock: 1 on errors
	[ "$(value HOST-REFUSED-MS)" -lt 1000 ]
	[[ "$(value HOST-REFUSED-MSG)" == *"closed without OK to CONNECT 5556"* ]]
	# Guest side: a reset, not the kernel's 2 s connect timeout.
	[ "$(value GUEST-REFUSED-RC)" = 1 ]
	[[ "$output" =~ "connect to vsock 2:5555: Connection "(reset\ by\ peer|refused) ]]
	awk -v s="$(value GUEST-REFUSED-SECS)" 'BEGIN { exit !(s != "" && s < 1) }'
	[ "$(value HOST-AFTER-REPLY)" = still-works ]
}

@test "${VSOCK_CONNS} connections each way at once, ${VSOCK_MIB} MiB each: SHA-256 matches on both ends of every one" {
	# 64 streams and their ~130 host-side processes starve a one-CPU emulated host: the
	# guest then answers connects after the 2 s that Firecracker (and ember) allow.
	# A connect that saw no answer in 2 s (a guest starved by its emulated host) is tried
	# again, as a client of Firecracker's socket would: the data must still all arrive.
	EMBER_VMHOST_SMP=2 vsock_run many "$VSOCK_MIB"
	# An open problem (README, "Known problems"): in the emulated host the guest sometimes
	# triple-faults here. Such a run is made once more, said in the TAP output.
	if [[ "$output" == *"guest shut down (triple fault)"* && "$(ember_host_kind)" == vmhost ]]; then
		echo "# vsock_linux: the guest triple-faulted (README, Known problems): once more" >&3
		EMBER_VMHOST_SMP=2 vsock_run many "$VSOCK_MIB"
	fi
	echo "connects tried again: host $(value HOST-H2G-RETRIES), guest $(value GUEST-G2H-RETRIES)"
	[ "$status" -eq 0 ]
	[ "$(value HOST-EMBER-STATUS)" = 0 ]
	[ "$(value HOST-H2G-OK)" = "$VSOCK_CONNS" ]
	[ "$(value GUEST-G2H-OK)" = "$VSOCK_CONNS" ]
}

@test "a host reader pausing 2 s holds the guest back; ember's RSS stays within 16 MiB; the data arrives intact" {
	vsock_run slow 4
	[ "$status" -eq 0 ]
	[ "$(value HOST-EMBER-STATUS)" = 0 ]
	[ "$(value HOST-SLOW-RC)" = 0 ]
	[ "$(value HOST-RECEIVED-BYTES)" = $((4 << 20)) ]
	local sent
	sent=$(value GUEST-SENT-SHA)
	[ ${#sent} -eq 64 ]
	[ "$sent" = "$(value HOST-RECEIVED-SHA)" ]
	local before max after
	before=$(value HOST-RSS-BEFORE) max=$(value HOST-RSS-MAX) after=$(value HOST-RSS-AFTER)
	echo "ember VmRSS: before $before kB, at most $max kB, after $after kB"
	[ -n "$before" ]
	[ -n "$max" ]
	[ -n "$after" ]
	[ "$max" -lt $((before + 16 * 1024)) ]
	[ "$after" -lt $((before + 16 * 1024)) ]
	# 4 MiB is far more than ember's 256 KiB of credit plus the sockets' buffers: the guest
	# can only finish once the reader reads again.
	awk -v a="$(value GUEST-SEND-T0)" -v b="$(value GUEST-SEND-T1)" \
		'BEGIN { d = b - a; print "the guest sent for " d " s"; exit !(a != "" && d >= 1.5) }'
}

@test "the guest's reboot -f closes an open host connection cleanly, and ember exits 0" {
	vsock_run reboot
	[ "$status" -eq 0 ]
	[[ "$output" == *"GUEST-REBOOTING"* ]]
	[ "$(value HOST-EMBER-STATUS)" = 0 ]
	[ "$(value HOST-CONN-OUT)" = ping-before-reboot ]
	[[ "$output" != *"HOST-CONN-STILL-RUNNING"* ]]
	[ "$(value HOST-CONN-STATUS)" = 0 ]
}

@test "the guest resetting its vsock device (driver unbind) closes open host connections; after bind a new one works" {
	vsock_run reset
	[ "$status" -eq 0 ]
	[ "$(value HOST-EMBER-STATUS)" = 0 ]
	[ "$(value HOST-CONN-OUT)" = ping-before-reset ]
	[[ "$output" != *"HOST-CONN-STILL-RUNNING"* ]]
	[ "$(value GUEST-REBOUND)" = 1 ]
	[ "$(value HOST-AFTER-REPLY)" = after-reset ]
}
