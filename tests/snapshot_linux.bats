#!/usr/bin/env bats
# Snapshots of a Linux guest where /dev/kvm can boot one (directly on a hardware KVM host,
# in the emulated KVM host here), driven by tests/snapshot/l1-snapshot.sh: a guest with a
# counting process, a tmpfs file, a TAP, a vsock device and a data drive is snapshotted and
# killed; a new ember loads it on another TAP and uds_path with clock_realtime, and
# everything goes on; then eight clones load the same snapshot at once and share its pages.

load lib/common
source "$EMBER_ROOT/tests/lib/host-kind.sh"

CLONES=${EMBER_SNAP_CLONES:-8}

setup_file() {
	require_linux_host "$GUEST_VMLINUX" "$GUEST_INITRAMFS" "$EMBER_ROOT/build/ember-vsock" ||
		return 1
	export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-590}
}

setup() {
	D=$(scratch_dir)
}

teardown() {
	rm -rf "$D"
}

@test "a snapshot loads on another TAP and uds_path: the counter goes on, tmpfs, ping, vsock both ways and the disk work; $CLONES clones run and share pages" {
	run ember_on_linux_host "$EMBER_ROOT/tests/snapshot/l1-snapshot.sh" "$D" "$CLONES"
	show_output
	[ "$status" -eq 0 ]
	[[ "$output" == *"HOST-DONE"* ]]
	[[ "$output" == *"GUEST-PING-BEFORE-OK"* ]]
	[ "$(value HOST-H2G-BEFORE)" = before ]
	[[ "$(value HOST-PAUSE)" == *HTTP204 ]]
	[[ "$(value HOST-CREATE)" == *HTTP204 ]]
	[[ "$(value HOST-LOAD)" == *HTTP204 ]]
	# The counting process goes on from where it was: its next count, or the one after if
	# the pause caught it between two.
	local before after
	before=$(value HOST-LAST-COUNT-BEFORE) after=$(value HOST-FIRST-COUNT-AFTER)
	echo "count $before before the snapshot, $after first after the load"
	[ "$before" -ge 3 ]
	[ "$after" -gt "$before" ]
	[ "$after" -le $((before + 2)) ]
	# The tmpfs file, a ping over the new TAP, the disk, and vsock each way.
	local tmpfs
	tmpfs=$(value GUEST-TMPFS-BEFORE)
	[[ "$tmpfs" == tmpfs-* ]]
	[ "$(value HOST-AFTER-TMPFS)" = "$tmpfs" ]
	[[ "$output" == *"HOST-AFTER-PING-OK"* ]]
	[ "$(value HOST-AFTER-DISK-READ)" = before-snapshot ]
	[ "$(value HOST-AFTER-DISK-WRITE)" = after-load ]
	[ "$(value HOST-DISK-SECTOR0)" = before-snapshot ]
	[ "$(value HOST-DISK-SECTOR1)" = after-load ]
	[ "$(value HOST-AFTER-G2H)" = guest-to-host ]
	[ "$(value HOST-H2G-AFTER)" = after ]
	[[ "$(value HOST-SECOND-CONFIG)" == *'"host_dev_name":"tap1"'* ]]
	[[ "$(value HOST-SECOND-CONFIG)" == *'/b.sock"'* ]]
	# clock_realtime: the guest's clock keeps its offset from the host's across the 6 s the
	# snapshot waited, and the load; the clones, loaded later without it, go on from the
	# snapshot's time and lag. (Each reading is within a second or two in the emulated host.)
	local o0 o1 oc
	o0=$(value HOST-CLOCK-OFFSET-BEFORE) o1=$(value HOST-CLOCK-OFFSET-AFTER) oc=$(value HOST-CLOCK-OFFSET-CLONE1)
	echo "guest clock minus host clock: $o0 s before, $o1 s after the load with clock_realtime, $oc s in clone 1"
	[ -n "$o0" ]
	[ -n "$o1" ]
	[ -n "$oc" ]
	[ $((o1 - o0)) -ge -3 ]
	[ $((o1 - o0)) -le 3 ]
	[ $((oc - o0)) -le -6 ]
	# The clones.
	[ "$(value HOST-CLONES-LOADED)" = "$CLONES" ]
	[ "$(value HOST-CLONES-RUNNING)" = "$CLONES" ]
	[ "$(value HOST-CLONES-ANSWERED)" = "$CLONES" ]
	local rss pss
	rss=$(value HOST-CLONES-RSS-KB) pss=$(value HOST-CLONES-PSS-KB)
	echo "clones: RSS $rss kB, PSS $pss kB in all"
	[ "$pss" -gt 0 ]
	[ $((pss * 2)) -lt "$rss" ]
}
