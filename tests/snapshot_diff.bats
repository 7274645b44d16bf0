#!/usr/bin/env bats
# Diff snapshots and dirty page tracking with the freestanding test guest on this host's
# /dev/kvm, and the ember-snap tool: a Diff holds exactly the pages dirtied since the last
# snapshot (those the guest wrote, logged by KVM, and those the VMM's devices wrote, in its
# own bitmap); merged onto its base it is the memory of that moment, and it loads.

load lib/common
load lib/counting

DATAPAGES="$EMBER_ROOT/tests/helpers/datapages.py"
SNAPFILE="$EMBER_ROOT/tests/helpers/snapfile.py"
SNAP="${EMBER_BUILD:-$EMBER_ROOT/build}/ember-snap"
MIB128=$((128 << 20))

setup() {
	D=$(scratch_dir)
	EMBER_PID=
}

teardown() {
	api_stop
	rm -rf "$D"
}

# boot WORDS [DEVICE_REQUESTS...]: a 1-vCPU, 128 MiB test guest with dirty page tracking,
# booted with WORDS on its command line; each DEVICE_REQUEST is "PATH BODY" for a PUT first.
boot() {
	local words=$1 req
	shift
	api_start
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 128, "track_dirty_pages": true}'
	for req in "$@"; do
		expect_api 204 PUT "${req%% *}" "${req#* }"
	done
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"$words\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
}

# create NAME TYPE: a snapshot of the paused VM into $D/NAME.state and $D/NAME.mem.
create() {
	expect_api 204 PUT /snapshot/create "{\"snapshot_path\": \"$D/$1.state\", \"mem_file_path\": \"$D/$1.mem\", \"snapshot_type\": \"$2\"}"
}

# run_a_while: resumes the paused VM until the guest counted 3 more, and pauses it again.
run_a_while() {
	local from
	from=$(last_count "$D/ember.out")
	expect_api 204 PATCH /vm '{"state": "Resumed"}'
	wait_count "$D/ember.out" $((from + 3))
	expect_api 204 PATCH /vm '{"state": "Paused"}'
}

# pages FILE: the memory file's data pages, one page number a line.
pages() {
	"$DATAPAGES" "$1"
}

# merged BASE DIFF OUT: a copy of BASE (holes kept) with DIFF merged onto it.
merged() {
	cp --sparse=always "$D/$1.mem" "$D/$3.mem"
	run "$SNAP" merge "$D/$3.mem" "$D/$2.mem"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "merged "*" bytes in "*" ranges from $D/$2.mem onto $D/$3.mem" ]]
}

@test "a Diff after a known write holds exactly the pages dirtied since the Full before it; one right after holds none" {
	boot dirty-pages
	wait_count "$D/ember.out" 2
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	create base Full
	run_a_while
	create diff Diff
	# Where the guest writes: 37 pages from 32 MiB, its count, and its stack.
	line=$(grep -ao 'dirty: base=[0-9]* pages=[0-9]* count_at=[0-9]* stack=[0-9]*-[0-9]*' "$D/ember.out")
	read -r base npages count_at stack_lo stack_hi < <(echo "$line" | tr -c '0-9\n' ' ')
	first=$((base / 4096)) last=$((base / 4096 + npages - 1)) count_page=$((count_at / 4096))
	# The page tables ember built (PML4 at 0x9000 to the last page directory at 0xe000): the
	# CPU's page walk sets their accessed and dirty bits, which KVM with nested paging logs
	# (the emulated host, hardware KVM); PVM did not.
	pt_first=9 pt_last=14
	mapfile -t got < <(pages "$D/diff.mem")
	echo "Diff pages: ${got[*]}; region $first-$last, count $count_page, stack $((stack_lo / 4096))-$(((stack_hi - 1) / 4096))"
	[ "$(stat -c %s "$D/diff.mem")" -eq "$MIB128" ]
	in_region=0 count_seen=0 stack=0
	for p in "${got[@]}"; do
		if [ "$p" -ge "$first" ] && [ "$p" -le "$last" ]; then
			in_region=$((in_region + 1))
		elif [ "$p" -eq "$count_page" ]; then
			count_seen=1
		elif [ "$p" -ge $((stack_lo / 4096)) ] && [ "$p" -le $(((stack_hi - 1) / 4096)) ]; then
			stack=$((stack + 1))
		elif [ "$p" -ge "$pt_first" ] && [ "$p" -le "$pt_last" ]; then
			: # a page table's accessed or dirty bit
		else
			echo "page $p was not dirtied by the guest"
			false
		fi
	done
	[ "$in_region" -eq "$npages" ]
	[ "$count_seen" -eq 1 ]
	[ "$stack" -ge 1 ]
	[ "$stack" -le 2 ]
	grep -q "snapshot: Diff, ${#got[@]} dirty pages of 128 MiB of guest memory written to $D/diff.mem" "$D/ember.out"
	# Nothing ran since: the next Diff is all hole, and so is one after a Full.
	create again Diff
	[ "$(pages "$D/again.mem" | wc -l)" -eq 0 ]
	[ "$(stat -c %s "$D/again.mem")" -eq "$MIB128" ]
	run_a_while
	create full Full
	create after Diff
	[ "$(pages "$D/after.mem" | wc -l)" -eq 0 ]
}

@test "a Diff merged onto its base is the memory of its moment, and loads: the count goes on from the Diff" {
	boot dirty-pages
	wait_count "$D/ember.out" 2
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	create base Full
	run_a_while
	run_a_while
	create diff Diff
	create full Full # the same moment, for the comparison
	saved=$(last_count "$D/ember.out")
	merged base diff restored
	cmp "$D/restored.mem" "$D/full.mem"
	kill -KILL "$EMBER_PID"
	wait "$EMBER_PID" 2>/dev/null || true
	mv "$D/ember.out" "$D/ember.out.first"
	api_start
	expect_api 204 PUT /snapshot/load "{\"snapshot_path\": \"$D/diff.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/restored.mem\"}, \"resume_vm\": true}"
	wait_count "$D/ember.out" $((saved + 2))
	first=$(grep -ao 'count=[0-9]*'$'\r' "$D/ember.out" | head -1 | tr -dc 0-9)
	echo "saved at $saved, the restored guest printed $first first"
	[ "$first" -gt "$saved" ] && [ "$first" -le $((saved + 2)) ]
}

# device_diff WORDS COUNTS_RE DEVICE_REQUESTS...: boots a guest that drives a device, takes a
# Full, lets it run, then a Diff and a Full of one moment: the Diff merged onto the first Full
# must be the second, the pages the device wrote included.
device_diff() {
	local words=$1 re=$2
	shift 2
	boot "$words" "$@"
	for _ in $(seq 200); do [ "$(grep -ac "$re" "$D/ember.out")" -ge 2 ] && break; sleep 0.05; done
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	create base Full
	n=$(grep -ac "$re" "$D/ember.out")
	expect_api 204 PATCH /vm '{"state": "Resumed"}'
	for _ in $(seq 200); do [ "$(grep -ac "$re" "$D/ember.out")" -ge $((n + 3)) ] && break; sleep 0.05; done
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	[ "$(grep -ac "$re" "$D/ember.out")" -ge $((n + 3)) ]
	create diff Diff
	create full Full
	merged base diff restored
	cmp "$D/restored.mem" "$D/full.mem"
}

@test "pages only the VMM writes are in the Diff: virtio-rng's random bytes" {
	device_diff rng-dirty 'rng: count=' "/entropy {}"
	run ! grep -a "count failed" "$D/ember.out"
}

@test "a guest reading and writing its virtio-blk drive: the Diff merged onto its base is the Full" {
	head -c 1M /dev/urandom >"$D/data.img"
	device_diff blk-count 'blk0: count=.* ok=1' \
		"/drives/data {\"drive_id\": \"data\", \"path_on_host\": \"$D/data.img\", \"is_root_device\": false}"
}

@test "Diff without dirty page tracking is refused with Firecracker's message, and writes nothing" {
	api_start
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"count\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 200 GET /machine-config "" '"track_dirty_pages":false'
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 400 PUT /snapshot/create "{\"snapshot_path\": \"$D/d.state\", \"mem_file_path\": \"$D/d.mem\", \"snapshot_type\": \"Diff\"}" \
		"Diff snapshots are not allowed on uVMs with dirty page tracking disabled."
	[ ! -e "$D/d.state" ]
	[ ! -e "$D/d.mem" ]
	expect_api 400 PUT /snapshot/create "{\"snapshot_path\": \"$D/d.state\", \"mem_file_path\": \"$D/d.mem\", \"snapshot_type\": \"Incremental\"}" \
		"snapshot_type 'Incremental': Full or Diff"
	# A Full snapshot is fine, and a load without tracking refuses Diffs as well.
	create base Full
	kill -KILL "$EMBER_PID"
	wait "$EMBER_PID" 2>/dev/null || true
	mv "$D/ember.out" "$D/ember.out.first"
	api_start
	expect_api 204 PUT /snapshot/load "{\"snapshot_path\": \"$D/base.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/base.mem\"}}"
	expect_api 400 PUT /snapshot/create "{\"snapshot_path\": \"$D/d.state\", \"mem_file_path\": \"$D/d.mem\", \"snapshot_type\": \"Diff\"}" \
		"dirty page tracking disabled"
}

# load_tracking STATE MEM FIELD: loads $D/STATE.state and $D/MEM.mem in a fresh ember with
# FIELD (track_dirty_pages or the deprecated enable_diff_snapshots) true, and resumes it.
load_tracking() {
	kill -KILL "$EMBER_PID"
	wait "$EMBER_PID" 2>/dev/null || true
	mv "$D/ember.out" "$D/ember.out.$EMBER_PID"
	api_start
	expect_api 204 PUT /snapshot/load "{\"snapshot_path\": \"$D/$1.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/$2.mem\"}, \"$3\": true, \"resume_vm\": true}"
	expect_api 200 GET /machine-config "" '"track_dirty_pages":true'
}

@test "a VM loaded with track_dirty_pages (or enable_diff_snapshots) makes Diffs of what changed since the load" {
	boot dirty-pages
	wait_count "$D/ember.out" 2
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	create gen1 Full
	saved=$(last_count "$D/ember.out")
	load_tracking gen1 gen1 track_dirty_pages
	wait_count "$D/ember.out" $((saved + 3))
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	create diff Diff
	create full Full
	[ "$(pages "$D/diff.mem" | wc -l)" -lt 50 ]
	saved=$(last_count "$D/ember.out")
	merged gen1 diff gen2
	cmp "$D/gen2.mem" "$D/full.mem"
	load_tracking diff gen2 enable_diff_snapshots
	wait_count "$D/ember.out" $((saved + 2))
	grep -q "snapshot $D/diff.state is a Diff: its memory file must be merged onto its base first" "$D/ember.out"
}

@test "ember-snap inspect: version, type, vCPUs, memory and devices; a corrupt file gets the loader's message" {
	head -c 1M /dev/urandom >"$D/data.img"
	boot blk-count "/drives/data {\"drive_id\": \"data\", \"path_on_host\": \"$D/data.img\", \"is_root_device\": false}" "/entropy {}"
	sleep 0.3
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	create full Full
	create diff Diff
	run "$SNAP" inspect "$D/full.state"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "snapshot: $D/full.state" ]
	[ "${lines[1]}" = "format version: 1.4" ]
	[ "${lines[2]}" = "type: Full" ]
	[ "${lines[3]}" = "vcpus: 1" ]
	[[ "${lines[4]}" =~ ^tsc:\ [1-9][0-9]*\ kHz$ ]]
	[ "${lines[5]}" = "memory: 128 MiB" ]
	[ "${lines[6]}" = "  region 0: guest 0x0-0x7ffffff (128 MiB) at memory file offset 0x0" ]
	[ "${lines[7]}" = "devices: 2" ]
	[ "${lines[8]}" = "  slot 0: drives 'data'" ]
	[ "${lines[9]}" = "  slot 1: entropy 'entropy'" ]
	run "$SNAP" inspect "$D/diff.state"
	echo "$output"
	[ "$status" -eq 0 ]
	n=$(pages "$D/diff.mem" | wc -l)
	[ "${lines[2]}" = "type: Diff ($n dirty pages, $((n * 4)) KiB, to merge onto its base)" ]
	# The loader's own refusals.
	cp "$D/full.state" "$D/bad.state"
	"$SNAPFILE" "$D/bad.state" poke 500 0x5a
	run "$SNAP" inspect "$D/bad.state"
	[ "$status" -eq 1 ]
	[ "$output" = "ember-snap: $D/bad.state: snapshot checksum mismatch: the file is corrupt" ]
	cp "$D/full.state" "$D/bad.state"
	"$SNAPFILE" "$D/bad.state" section MACH 0 0 33
	run "$SNAP" inspect "$D/bad.state"
	[ "$output" = "ember-snap: $D/bad.state: the snapshot has 33 vCPUs (1 to 32)" ]
	cp "$D/full.state" "$D/bad.state"
	"$SNAPFILE" "$D/bad.state" section MEMF 0 0 2
	run "$SNAP" inspect "$D/bad.state"
	[ "$output" = "ember-snap: $D/bad.state: the snapshot's memory section is malformed" ]
	cp "$D/full.state" "$D/bad.state"
	"$SNAPFILE" "$D/bad.state" section MEMF 0 1 1
	run "$SNAP" inspect "$D/bad.state"
	[ "$output" = "ember-snap: $D/bad.state: the snapshot's memory file layout is not the one of its 128 MiB" ]
	# A Full that claims dirty pages: byte 9 is the low byte of the count.
	cp "$D/full.state" "$D/bad.state"
	"$SNAPFILE" "$D/bad.state" section MEMF 0 9 3
	run "$SNAP" inspect "$D/bad.state"
	[ "$output" = "ember-snap: $D/bad.state: the snapshot's memory section counts 3 dirty pages" ]
	# The same refusal from the loader itself.
	kill -KILL "$EMBER_PID"
	wait "$EMBER_PID" 2>/dev/null || true
	mv "$D/ember.out" "$D/ember.out.first"
	api_start
	expect_api 400 PUT /snapshot/load "{\"snapshot_path\": \"$D/bad.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/full.mem\"}}" \
		"Load snapshot error: the snapshot's memory section counts 3 dirty pages"
	: >"$D/empty.state"
	run "$SNAP" inspect "$D/empty.state"
	[ "$output" = "ember-snap: $D/empty.state: snapshot truncated: 0 bytes, less than its header" ]
	run "$SNAP" inspect "$D/missing.state"
	[ "$status" -eq 1 ]
	[ "$output" = "ember-snap: $D/missing.state: No such file or directory" ]
	run "$SNAP" frobnicate
	[ "$status" -eq 2 ]
	[[ "$output" == "usage: ember-snap inspect STATE_FILE"* ]]
}

@test "ember-snap merge: data ranges onto the base; another size, the base itself and a missing file are refused" {
	# A base of 1 MiB of ones, a Diff of the same size with two data ranges.
	head -c 1M /dev/zero | tr '\0' '\1' >"$D/base.mem"
	truncate -s 1M "$D/diff.mem"
	printf 'AAAA' | dd of="$D/diff.mem" bs=4096 seek=3 conv=notrunc status=none
	head -c 8192 /dev/zero | dd of="$D/diff.mem" bs=4096 seek=200 conv=notrunc status=none
	run "$SNAP" merge "$D/base.mem" "$D/diff.mem"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "merged 12288 bytes in 2 ranges from $D/diff.mem onto $D/base.mem" ]
	[ "$(head -c $((3 * 4096 + 4)) "$D/base.mem" | tail -c 4)" = AAAA ]
	# Page 3 came whole from the Diff (zeros after AAAA), pages 200-201 are zeros, the rest ones.
	[ "$(cmp -l "$D/base.mem" <(head -c 1M /dev/zero | tr '\0' '\1') | wc -l)" -eq $((3 * 4096)) ]
	truncate -s 2M "$D/big.mem"
	run "$SNAP" merge "$D/base.mem" "$D/big.mem"
	[ "$status" -eq 1 ]
	[ "$output" = "ember-snap: $D/big.mem is 2097152 bytes, $D/base.mem 1048576: a Diff merges only onto the memory file of the same VM" ]
	run "$SNAP" merge "$D/base.mem" "$D/base.mem"
	[ "$status" -eq 1 ]
	[ "$output" = "ember-snap: $D/base.mem: is the base itself" ]
	run "$SNAP" merge "$D/base.mem" "$D/none.mem"
	[ "$status" -eq 1 ]
	[ "$output" = "ember-snap: $D/none.mem: No such file or directory" ]
}
