#!/usr/bin/env bats
# Snapshots (PUT /snapshot/create, /snapshot/load) with the freestanding test guest on this
# host's /dev/kvm: a guest that counts in memory goes on counting in a fresh ember, the
# memory file is sparse, and every malformed state file is refused with its own message.

load lib/common
load lib/counting

SNAPFILE="$EMBER_ROOT/tests/helpers/snapfile.py"

setup() {
	D=$(scratch_dir)
	EMBER_PID=
}

teardown() {
	api_stop
	rm -rf "$D"
}

@test "a counting guest snapshotted, killed and loaded in a fresh ember counts on from where it was" {
	good_snapshot
	expect_api 204 PUT /snapshot/load "$(load_body good true)"
	expect_api 200 GET / "" '"state":"Running"'
	wait_count "$D/ember.out" $((SAVED + 2))
	first=$(first_count "$D/ember.out")
	echo "saved at $SAVED, restored guest printed $first first"
	# The pause may have caught the guest between its increment and its line.
	[ "$first" -gt "$SAVED" ]
	[ "$first" -le $((SAVED + 2)) ]
	grep -q "snapshot $D/good.state loaded in [0-9]* us, vCPUs running" "$D/ember.out"
}

@test "without resume_vm a loaded VM stays paused until PATCH /vm Resumed (deprecated mem_file_path)" {
	good_snapshot
	expect_api 400 PUT /snapshot/load "{\"snapshot_path\": \"$D/good.state\", \"mem_file_path\": \"$D/good.mem\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/good.mem\"}}" \
		"exclude each other"
	expect_api 204 PUT /snapshot/load "{\"snapshot_path\": \"$D/good.state\", \"mem_file_path\": \"$D/good.mem\"}"
	expect_api 200 GET / "" '"state":"Paused"'
	sleep 0.5
	[ "$(last_count "$D/ember.out")" -eq 0 ]
	expect_api 204 PATCH /vm '{"state": "Resumed"}'
	wait_count "$D/ember.out" $((SAVED + 1))
}

@test "the memory file is sparse: memory size long, few blocks allocated" {
	boot_counting
	snapshot s
	size=$(stat -c %s "$D/s.mem")
	allocated=$(($(stat -c %b "$D/s.mem") * $(stat -c %B "$D/s.mem")))
	echo "size $size, allocated $allocated"
	[ "$size" -eq $((128 << 20)) ]
	# The test guest touches well under a MiB of its 128.
	[ "$allocated" -lt $((4 << 20)) ]
	[ "$allocated" -gt 0 ]
}

@test "two vCPUs: a snapshot restores both and the guest counts on" {
	api_start
	expect_api 204 PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 128}'
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"smp count\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	wait_count "$D/ember.out" 2
	grep -q "smp: mptable=2 cpus=2" "$D/ember.out"
	snapshot s
	saved=$(last_count "$D/ember.out")
	fresh_ember
	expect_api 204 PUT /snapshot/load "$(load_body s true)"
	wait_count "$D/ember.out" $((saved + 1))
	expect_api 200 GET /machine-config "" '"vcpu_count":2,"mem_size_mib":128'
}

# last_ticks FILE: the count-timer guest's last "ticks=N" in FILE (0 if none).
last_ticks() {
	local n
	n=$(grep -ao 'ticks=[0-9]*'$'\r' "$1" | tail -1 | tr -dc 0-9)
	echo "${n:-0}"
}

@test "a halted guest woken by its LAPIC timer goes on taking timer interrupts after a load" {
	api_start
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"count-timer\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 100); do [ "$(last_ticks "$D/ember.out")" -ge 20 ] && break; sleep 0.05; done
	snapshot s
	saved=$(last_ticks "$D/ember.out")
	[ "$saved" -ge 20 ]
	fresh_ember
	expect_api 204 PUT /snapshot/load "$(load_body s true)"
	# The LAPIC's timer, the IDT and the halted vCPU all came back: the count goes on.
	for _ in $(seq 100); do [ "$(last_ticks "$D/ember.out")" -ge $((saved + 20)) ] && break; sleep 0.05; done
	cat "$D/ember.out"
	[ "$(last_ticks "$D/ember.out")" -ge $((saved + 20)) ]
	first=$(grep -ao 'ticks=[0-9]*' "$D/ember.out" | head -1 | tr -dc 0-9)
	[ "$first" -gt "$saved" ]
}

# blk_counts FILE: the blk-count guest's counts whose write and read-back succeeded.
blk_counts() {
	sed -n 's/.*blk0: count=\([0-9]*\) ok=1.*/\1/p' "$1"
}

@test "a guest writing and reading its virtio-blk drive goes on doing so after a load; a drive of another size is refused" {
	truncate -s 1M "$D/data.img"
	api_start
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 128}'
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"blk-count\"}"
	expect_api 204 PUT /drives/data "{\"drive_id\": \"data\", \"path_on_host\": \"$D/data.img\", \"is_root_device\": false}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 200); do [ "$(blk_counts "$D/ember.out" | wc -l)" -ge 3 ] && break; sleep 0.05; done
	snapshot s
	saved=$(blk_counts "$D/ember.out" | tail -1)
	[ -n "$saved" ]
	run grep -a "blk0: count=.* ok=0" "$D/ember.out"
	[ "$status" -eq 1 ]
	fresh_ember
	truncate -s 2M "$D/data.img"
	expect_api 400 PUT /snapshot/load "$(load_body s true)" "the snapshot's disk had 2048"
	truncate -s 1M "$D/data.img"
	expect_api 204 PUT /snapshot/load "$(load_body s true)"
	for _ in $(seq 200); do [ "$(blk_counts "$D/ember.out" | wc -l)" -ge 5 ] && break; sleep 0.05; done
	cat "$D/ember.out"
	# Every request after the load completed once, with the data written read back.
	[ "$(blk_counts "$D/ember.out" | wc -l)" -ge 5 ]
	run grep -a "blk0: count=.* ok=0" "$D/ember.out"
	[ "$status" -eq 1 ]
	first=$(blk_counts "$D/ember.out" | head -1)
	[ "$first" -gt "$saved" ]
	[ "$first" -le $((saved + 2)) ]
	expect_api 200 GET /vm/config "" "\"path_on_host\":\"$D/data.img\""
}

@test "a guest reading its entropy device goes on reading after a load, and the device is in the loaded configuration" {
	api_start
	expect_api 204 PUT /entropy '{}'
	# "rng-count" is only the guest's word: its output, "rng: count=N", is not on the command line.
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"rng-count\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	wait_count "$D/ember.out" 2
	snapshot good
	SAVED=$(last_count "$D/ember.out")
	fresh_ember
	expect_api 204 PUT /snapshot/load "$(load_body good true)"
	expect_api 200 GET /vm/config "" '"entropy":{}'
	wait_count "$D/ember.out" $((SAVED + 3))
	first=$(first_count "$D/ember.out")
	echo "saved at $SAVED, restored guest printed $first first"
	[ "$(grep -c "count failed" "$D/ember.out")" = 0 ]
	[ "$first" -gt "$SAVED" ] && [ "$first" -le $((SAVED + 2)) ]
}

@test "create: refused before boot, while running, and for Diff without tracking" {
	api_start
	expect_api 400 PUT /snapshot/create "{\"snapshot_path\": \"$D/s\", \"mem_file_path\": \"$D/m\"}" \
		"not supported before starting the microVM"
	expect_api 204 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$D/v.sock\"}"
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"count\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 400 PUT /snapshot/create "{\"snapshot_path\": \"$D/s\", \"mem_file_path\": \"$D/m\"}" \
		"Create snapshot error: Cannot save the microVM state: Operation not allowed: save/restore unavailable while running"
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 400 PUT /snapshot/create "{\"snapshot_path\": \"$D/s\", \"mem_file_path\": \"$D/m\", \"snapshot_type\": \"Diff\"}" \
		"Diff snapshots are not allowed on uVMs with dirty page tracking disabled."
	[ ! -e "$D/s" ]
	[ ! -e "$D/m" ]
	# Every kind of device has its hooks now (snapshot_devices.bats): this one is taken.
	expect_api 204 PUT /snapshot/create "{\"snapshot_path\": \"$D/s\", \"mem_file_path\": \"$D/m\"}"
	expect_api 204 PATCH /vm '{"state": "Resumed"}'
}

@test "load: refused after configuration, after boot, and with a bad body" {
	api_start
	expect_api 204 PUT /logger "{\"log_path\": \"$D/log\"}" # the logger may come first
	expect_api 400 PUT /snapshot/load "{\"snapshot_path\": \"$D/s\"}" "mem_backend is required"
	expect_api 400 PUT /snapshot/load "{\"snapshot_path\": \"$D/s\", \"mem_backend\": {\"backend_type\": \"Nope\", \"backend_path\": \"$D/u\"}}" \
		"backend_type 'Nope' is neither File nor Uffd"
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 400 PUT /snapshot/load "$(load_body s true)" \
		"Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources."
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"halt\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 400 PUT /snapshot/load "$(load_body s true)" "not supported after starting the microVM"
}

# refused WHY: the load of $D/good.* fails with WHY in its message and ember still answers.
refused() {
	expect_api 400 PUT /snapshot/load "$(load_body good true)" "$1"
	expect_api 200 GET / "" '"state":"Not started"'
}

@test "malformed state files are each refused with their own message; the good one loads after" {
	good_snapshot
	cp "$D/good.state" "$D/orig.state"
	: >"$D/good.state"
	refused "snapshot truncated: 0 bytes"
	head -c 1000 "$D/orig.state" >"$D/good.state"
	refused "snapshot truncated: 1000 of its"
	{ cat "$D/orig.state"; printf 'x'; } >"$D/good.state"
	refused "snapshot has 1 bytes after its end"
	cp "$D/orig.state" "$D/good.state"
	"$SNAPFILE" "$D/good.state" poke 0 0x58
	refused "not an ember snapshot: bad magic"
	cp "$D/orig.state" "$D/good.state"
	"$SNAPFILE" "$D/good.state" poke 8 2
	refused "snapshot format version 2." # the minor is this ember's
	refused "this ember reads version 1.x only"
	cp "$D/orig.state" "$D/good.state"
	"$SNAPFILE" "$D/good.state" poke 500 0x5a
	refused "snapshot checksum mismatch: the file is corrupt"
	# Valid checksums over wrong content: the checks behind the checksum.
	cp "$D/orig.state" "$D/good.state"
	"$SNAPFILE" "$D/good.state" section MACH 0 0 33
	refused "the snapshot has 33 vCPUs (1 to 32)"
	cp "$D/orig.state" "$D/good.state"
	"$SNAPFILE" "$D/good.state" section MACH 0 4 0x81
	refused "the snapshot's memory layout is not the one this ember builds for 129 MiB"
	cp "$D/orig.state" "$D/good.state"
	"$SNAPFILE" "$D/good.state" section CONF 0 0 0x5b
	refused "device configuration is not a JSON object"
	# The serial FIFO count: found only once the VM is half built, which is then undone.
	cp "$D/orig.state" "$D/good.state"
	"$SNAPFILE" "$D/good.state" section SERL 0 8 200
	refused "serial: 200 bytes in a 64-byte FIFO"
	# The memory file: missing, and of another size.
	cp "$D/orig.state" "$D/good.state"
	mv "$D/good.mem" "$D/orig.mem"
	refused "memory file $D/good.mem: No such file or directory"
	truncate -s 64M "$D/good.mem"
	refused "memory file $D/good.mem: 67108864 bytes, the snapshot's memory is 134217728"
	mv "$D/orig.mem" "$D/good.mem"
	# After all that, the same process loads the good snapshot.
	expect_api 204 PUT /snapshot/load "$(load_body good true)"
	wait_count "$D/ember.out" $((SAVED + 1))
}

@test "a snapshot of a restored VM is written elsewhere than its own memory file, and loads" {
	good_snapshot
	expect_api 204 PUT /snapshot/load "$(load_body good true)"
	wait_count "$D/ember.out" $((SAVED + 1))
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 400 PUT /snapshot/create "{\"snapshot_path\": \"$D/again.state\", \"mem_file_path\": \"$D/good.mem\"}" \
		"is the file this VM's memory was loaded from"
	expect_api 204 PUT /snapshot/create "{\"snapshot_path\": \"$D/again.state\", \"mem_file_path\": \"$D/again.mem\"}"
	saved=$(last_count "$D/ember.out")
	fresh_ember
	expect_api 204 PUT /snapshot/load "$(load_body again true)"
	wait_count "$D/ember.out" $((saved + 1))
	first=$(first_count "$D/ember.out")
	[ "$first" -gt "$saved" ] && [ "$first" -le $((saved + 2)) ]
}

# cli_snapshot: the counting guest's snapshot in $D/good.*, and no ember running.
cli_snapshot() {
	good_snapshot
	api_stop
}

@test "ember --no-api --snapshot STATE --snapshot-mem MEM starts the snapshot's guest running" {
	cli_snapshot
	"$EMBER" --no-api --snapshot "$D/good.state" --snapshot-mem "$D/good.mem" >"$D/ember.out" 2>&1 &
	EMBER_PID=$!
	wait_count "$D/ember.out" $((SAVED + 2))
	first=$(first_count "$D/ember.out")
	[ "$first" -gt "$SAVED" ]
	[ "$first" -le $((SAVED + 2)) ]
	grep -q "snapshot $D/good.state loaded in [0-9]* us, vCPUs running" "$D/ember.out"
}

@test "a config file's snapshot-load (the body of PUT /snapshot/load) starts from the snapshot, logger first" {
	cli_snapshot
	cat >"$D/vm.json" <<JSON
{"snapshot-load": $(load_body good true), "logger": {"log_path": "$D/log", "level": "Info"}}
JSON
	"$EMBER" --no-api --config-file "$D/vm.json" >"$D/ember.out" 2>&1 &
	EMBER_PID=$!
	wait_count "$D/ember.out" $((SAVED + 2))
	# The logger came before the load, wherever its key stands: the load's line is in its file.
	grep -q "snapshot $D/good.state loaded in [0-9]* us, vCPUs running" "$D/log"
}

@test "a snapshot loaded paused through a config file waits for PATCH /vm Resumed on the API" {
	cli_snapshot
	echo "{\"snapshot-load\": $(load_body good false)}" >"$D/vm.json"
	api_start --config-file "$D/vm.json"
	expect_api 200 GET / "" '"state":"Paused"'
	expect_api 204 PATCH /vm '{"state": "Resumed"}'
	wait_count "$D/ember.out" $((SAVED + 1))
}

@test "starting from a snapshot without the API: each misuse is refused with its own message" {
	cli_snapshot
	run "$EMBER" --no-api --snapshot "$D/good.state"
	[ "$status" -eq 1 ]
	[[ "$output" == *"--snapshot and --snapshot-mem come together"* ]]
	run "$EMBER" --no-api --snapshot "$D/none.state" --snapshot-mem "$D/good.mem"
	[ "$status" -eq 1 ]
	[[ "$output" == *"--snapshot $D/none.state: Load snapshot error: snapshot_path $D/none.state: No such file or directory"* ]]
	echo "{\"snapshot-load\": $(load_body good true), \"boot-source\": {\"kernel_image_path\": \"$TEST_GUEST\"}}" >"$D/vm.json"
	run "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"'snapshot-load' and 'boot-source' exclude each other"* ]]
	echo "{\"snapshot-load\": $(load_body good false)}" >"$D/vm.json"
	run "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"loaded paused (resume_vm false) and nothing could resume it"* ]]
	echo "{\"snapshot-load\": {\"snapshot_path\": \"$D/good.state\"}}" >"$D/vm.json"
	run "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"snapshot-load: Load snapshot error: snapshot: mem_backend is required"* ]]
	run "$EMBER" --no-api --config-file "$D/vm.json" --snapshot "$D/good.state" --snapshot-mem "$D/good.mem"
	[ "$status" -eq 1 ]
	[[ "$output" == *"--snapshot and --config-file exclude each other"* ]]
}

@test "a resumed guest's kvmclock says it was stopped (KVM_KVMCLOCK_CTRL), after a pause and after a load" {
	api_start
	# "count-clock" is only the guest's word: its output is "clock: count=N ms=M".
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"count-clock\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 100); do grep -q "clock: count=3 " "$D/ember.out" && break; sleep 0.05; done
	run grep -c "clock: guest-stopped" "$D/ember.out"
	[ "$output" = 0 ]
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 204 PATCH /vm '{"state": "Resumed"}'
	for _ in $(seq 100); do grep -q "clock: guest-stopped" "$D/ember.out" && break; sleep 0.05; done
	grep -q "clock: guest-stopped" "$D/ember.out"
	snapshot s
	fresh_ember
	expect_api 204 PUT /snapshot/load "$(load_body s true)"
	for _ in $(seq 100); do grep -q "clock: guest-stopped" "$D/ember.out" && break; sleep 0.05; done
	grep -q "clock: guest-stopped" "$D/ember.out"
}

@test "a snapshot's TSC frequency: shown by ember-snap, checked at load; one this host cannot run is refused naming both" {
	skip_without_constant_tsc
	good_snapshot
	run "${EMBER_BUILD:-$EMBER_ROOT/build}/ember-snap" inspect "$D/good.state"
	khz=$(sed -n 's/^tsc: \([0-9]*\) kHz$/\1/p' <<<"$output")
	[ "$khz" -gt 0 ]
	# Half the rate: the top byte of the little-endian u32 that ends vCPU 0's section.
	half=$((khz / 2))
	for i in 0 1 2 3; do
		"$SNAPFILE" "$D/good.state" section VCPU 0 $((i - 4)) $(((half >> (8 * i)) & 255))
	done
	run "${EMBER_BUILD:-$EMBER_ROOT/build}/ember-snap" inspect "$D/good.state"
	[[ "$output" == *"tsc: $half kHz"* ]]
	if grep -qw constant_tsc /proc/cpuinfo && [ -e /sys/module/kvm_pvm ]; then
		# PVM scales no TSC: the load is refused and the process can load again.
		expect_api 400 PUT /snapshot/load "$(load_body good true)" \
			"vCPU 0: the snapshot's TSC runs at $half kHz, this host's at $khz kHz, and its KVM cannot scale it"
	else
		# A KVM with TSC scaling runs the guest at the saved rate.
		expect_api 204 PUT /snapshot/load "$(load_body good true)"
	fi
}
