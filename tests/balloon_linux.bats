#!/usr/bin/env bats
# virtio-balloon under a real 256 MiB Linux guest where /dev/kvm can boot one (directly on a
# hardware KVM host, in the emulated KVM host here), driven by tests/balloon/l1-balloon.sh:
# inflating by 128 MiB gives ember's memory back to the host and takes it from the guest,
# deflating gives it back to the guest; with deflate_on_oom an allocation past the balloon
# succeeds (without, it does not); statistics arrive at their interval with sane values;
# free page reporting gives freed guest memory back to the host; so does a free page hinting
# run the host starts (in the inflate boot, after the deflate: no boot of its own).

load lib/common
source "$EMBER_ROOT/tests/lib/host-kind.sh"

setup_file() {
	require_linux_host "$GUEST_VMLINUX" "$GUEST_INITRAMFS" || return 1
	grep -qx CONFIG_VIRTIO_BALLOON=y "$EMBER_ROOT/build/guest/kernel.config" || {
		echo "build/guest/kernel.config has no CONFIG_VIRTIO_BALLOON=y: run 'make kernel'" >&2
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

balloon_run() { # balloon_run MODE
	run ember_on_linux_host "$EMBER_ROOT/tests/balloon/l1-balloon.sh" "$D" "$1"
	show_output
	echo "--- balloon metrics:"
	jq -c .balloon "$D/metrics" 2>/dev/null || true
}

# host KEY: the value of the script's line KEY=VALUE.
host() {
	sed -n "s/^$1=//p" <<<"$output" | tr -d '\r' | tail -1
}

# guest MARKER KEY: KEY=VALUE on the guest's line MARKER ...
guest() {
	sed -n "s/^$1 .*$2=\([0-9]*\).*/\1/p" <<<"$output" | tr -d '\r' | tail -1
}

# metric NAME: the balloon group's NAME summed over every metrics line.
metric() {
	jq -s "map(.balloon.$1 // 0) | add" "$D/metrics"
}

@test "inflate by 128 MiB: ember's RSS falls by 100 MiB or more, the guest's MemTotal by 128 MiB; statistics each second; deflate: the guest fills 180 MiB; a hinting run gives the 180 MiB it frees back to the host" {
	balloon_run inflate
	[ "$status" -eq 0 ]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	[ "$(host HOST-PATCH-INFLATE)" = "" ] # 204: no body
	local before after
	before=$(host HOST-RSS-TOUCHED-KB) after=$(host HOST-RSS-INFLATED-KB)
	echo "ember VmRSS: $before kB with the guest's memory touched, $after kB inflated ($(((before - after) / 1024)) MiB less)"
	[ "$before" -ge $((200 * 1024)) ] # the guest's freed memory stayed with the host
	[ $((before - after)) -ge $((100 * 1024)) ]
	# The guest lost 128 MiB of MemTotal and about as much of MemAvailable.
	local mt0 mt1 av0 av1
	mt0=$(guest GUEST-TOUCHED memtotal) mt1=$(guest GUEST-INFLATED memtotal)
	av0=$(guest GUEST-TOUCHED avail) av1=$(guest GUEST-INFLATED avail)
	echo "guest MemTotal $mt0 -> $mt1 kB, MemAvailable $av0 -> $av1 kB"
	[ $((mt0 - mt1)) -eq $((128 * 1024)) ]
	[ $((av0 - av1)) -ge $((110 * 1024)) ]
	# GET /balloon/statistics: target and actual, and the guest's numbers.
	local st
	st=$(host HOST-STATS-LATER)
	[ "$(jq .target_mib <<<"$st")" = 128 ]
	[ "$(jq .actual_mib <<<"$st")" = 128 ]
	[ "$(jq .actual_pages <<<"$st")" = 32768 ]
	# total_memory is the guest's MemTotal in bytes, the others at most that.
	[ "$(jq .total_memory <<<"$st")" -eq $((mt1 * 1024)) ]
	jq -e '.free_memory > 0 and .free_memory <= .total_memory' <<<"$st"
	jq -e '.available_memory > 0 and .available_memory <= .total_memory' <<<"$st"
	jq -e '.minor_faults > 0 and .disk_caches >= 0 and .swap_in == 0' <<<"$st"
	[ "$(host HOST-BALLOON)" = '{"amount_mib":128,"deflate_on_oom":false,"stats_polling_interval_s":1,"free_page_hinting":true}' ]
	# The statistics interval: about one update a second over the flushes' window.
	local window updates
	window=$(host HOST-STATS-WINDOW-MS)
	updates=$(host HOST-STATS-UPDATES)
	echo "statistics updates: $updates in $window ms"
	[ "$updates" -ge $((window / 1000 - 2)) ]
	[ "$updates" -le $((window / 1000 + 1)) ]
	# Deflated: MemTotal back, and the guest can hold 180 MiB again.
	[ "$(guest GUEST-DEFLATED memtotal)" -eq "$mt0" ]
	[[ "$output" == *"GUEST-USED-AGAIN rc=0 mib=180"* ]]
	[ "$(metric inflate_count)" -gt 0 ]
	[ "$(metric deflate_count)" -gt 0 ]
	[ "$(metric event_fails)" -eq 0 ]
	# Free page hinting (acknowledge_on_stop false): the run's id is 2, the guest's STOP
	# leaves it until the host's stop, which sends DONE (1).
	[ "$(host HOST-HINT-STATUS-BEFORE)" = '{"host_cmd":0}' ]
	[ "$(host HOST-HINT-START)" = "" ] # 204: no body
	[ "$(host HOST-HINT-STATUS-STOPPED)" = '{"host_cmd":2,"guest_cmd":0}' ]
	[ "$(host HOST-HINT-STOP)" = "" ]
	[ "$(host HOST-HINT-STATUS-DONE)" = '{"host_cmd":1,"guest_cmd":0}' ]
	local freed hinted a0 held back
	freed=$(host HOST-RSS-FREED-KB) hinted=$(host HOST-RSS-HINTED-KB)
	a0=$(guest GUEST-FREED-AGAIN avail) held=$(guest GUEST-HINT-HELD avail)
	back=$(guest GUEST-HINT-RETURNED avail)
	echo "hinting: $(host HOST-HINT-MS) ms to the guest's STOP; ember VmRSS $freed -> $hinted kB ($(((freed - hinted) / 1024)) MiB less); guest MemAvailable $a0 -> $held (held by the driver) -> $back kB"
	[ "$freed" -ge $((200 * 1024)) ]
	[ $((freed - hinted)) -ge $((100 * 1024)) ]
	[ $((a0 - held)) -ge $((64 * 1024)) ]
	[ "$back" -ge $((a0 - 16 * 1024)) ]
	[ "$(metric free_page_hint_count)" -gt 0 ]
	[ "$(metric free_page_hint_freed)" -ge $((100 << 20)) ]
	[ "$(metric free_page_hint_fails)" -eq 0 ]
}

@test "deflate_on_oom: with a 128 MiB balloon the guest fills 170 MiB; the balloon gives way" {
	balloon_run oom
	[ "$status" -eq 0 ]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	[ "$(host HOST-BALLOON)" = '{"amount_mib":128,"deflate_on_oom":true,"stats_polling_interval_s":0}' ]
	[ "$(guest GUEST-INFLATED avail)" -le $((120 * 1024)) ]
	[[ "$output" == *"GUEST-FILLED rc=0 mib=170"* ]]
	[ "$(metric deflate_count)" -gt 0 ]
}

@test "without deflate_on_oom the same 170 MiB do not fit beside the balloon" {
	balloon_run oom-control
	[ "$(guest GUEST-INFLATED avail)" -le $((120 * 1024)) ]
	[[ "$output" != *"GUEST-FILLED rc=0 mib=170"* ]]
	[ "$(metric deflate_count)" -eq 0 ]
}

@test "free page reporting: 160 MiB the guest frees go back to the host" {
	balloon_run report
	[ "$status" -eq 0 ]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	[[ "$output" == *"GUEST-FILLED rc=0 mib=160"* ]]
	local full low
	full=$(host HOST-RSS-FILLED-KB) low=$(host HOST-RSS-AFTER-FREE-MIN-KB)
	echo "ember VmRSS: $full kB full, $low kB at the lowest after the free ($(((full - low) / 1024)) MiB less)"
	[ "$full" -ge $((160 * 1024)) ]
	[ $((full - low)) -ge $((100 * 1024)) ]
	[ "$(metric free_page_report_count)" -gt 0 ]
	[ "$(metric free_page_report_freed)" -ge $((100 << 20)) ]
	[ "$(metric free_page_report_fails)" -eq 0 ]
}
