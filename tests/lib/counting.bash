# The counting test guest ("count" on its command line prints count=N, one a tick) and its
# snapshots through the API, for the snapshot suites. Needs lib/common, D and EMBER_PID.

# last_count FILE: the guest's last complete "count=N" in FILE (0 if none).
last_count() {
	local n
	n=$(grep -ao 'count=[0-9]*'$'\r' "$1" | tail -1 | tr -dc 0-9)
	echo "${n:-0}"
}

# first_count FILE: the guest's first complete "count=N" in FILE.
first_count() {
	grep -ao 'count=[0-9]*'$'\r' "$1" | head -1 | tr -dc 0-9
}

# wait_count FILE N: until the guest printed count N or more (30 s at most: a guest counts
# several times a second, but a loaded emulated host can stall it for seconds).
wait_count() {
	for _ in $(seq 600); do
		[ "$(last_count "$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "the guest never counted to $2:" >&2
	cat "$1" >&2
	return 1
}

# boot_counting: a 1-vCPU, 128 MiB counting guest through the API.
boot_counting() {
	api_start
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 128}'
	# "count" is only the guest's word: its output, count=N, is not on the command line.
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"count\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	wait_count "$D/ember.out" 2
}

# snapshot NAME: pauses the VM and writes $D/NAME.state and $D/NAME.mem.
snapshot() {
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 204 PUT /snapshot/create "{\"snapshot_path\": \"$D/$1.state\", \"mem_file_path\": \"$D/$1.mem\", \"snapshot_type\": \"Full\"}"
}

# load_body NAME RESUME: a load request for $D/NAME.*.
load_body() {
	echo "{\"snapshot_path\": \"$D/$1.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/$1.mem\"}, \"resume_vm\": $2}"
}

# fresh_ember: ends the current ember (SIGKILL: nothing of it may matter) and starts another.
fresh_ember() {
	kill -KILL "$EMBER_PID"
	wait "$EMBER_PID" 2>/dev/null || true
	mv "$D/ember.out" "$D/ember.out.$EMBER_PID"
	rm -f "$D/api.sock"
	api_start
}

# good_snapshot: a snapshot of the counting guest in $D/good.*, and a fresh ember; sets
# SAVED to the last count before the snapshot.
good_snapshot() {
	boot_counting
	snapshot good
	SAVED=$(last_count "$D/ember.out")
	fresh_ember
}
