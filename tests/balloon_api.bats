#!/usr/bin/env bats
# The balloon device through the API with the freestanding test guest on this host's /dev/kvm:
# PUT /balloon (Firecracker's body) before start, PATCH /balloon and /balloon/statistics
# after, GET /balloon and /balloon/statistics, GET /vm/config, the config file's "balloon",
# free page hinting (PATCH /balloon/hinting/start and /stop, GET /balloon/hinting/status),
# Firecracker's messages and phase rules, the "balloon" metrics, and snapshots. The guest's
# polling driver (tests/guest/balloon.c) follows the target and checks that inflated and
# hinted pages read as zeros afterwards (the host took them back), and that a hint after DONE
# leaves them alone.

load lib/common

setup() {
	D=$(scratch_dir)
	EMBER_PID=
}

teardown() {
	api_stop
	rm -rf "$D"
}

NOT_FOUND="Balloon config error: No balloon device found."
TOO_LARGE="Balloon config error: Amount of pages requested is too large."
# The hinting endpoints came after Firecracker v1.10: its later messages.
HINT_NOT_FOUND="Balloon update error: Failed perform action on device: Device not found"
HINT_OFF="Balloon update error: Balloon: Attempting to use hinting when not enabled"
HINT_INACTIVE="Balloon update error: Balloon: Device not activated yet."
PRE_BOOT="The requested operation is not supported before starting the microVM."

# wait_out TEXT [N]: until $D/ember.out holds TEXT (N times; 10 s at most).
wait_out() {
	local n=${2:-1}
	for _ in $(seq 200); do
		[ "$(grep -ac -- "$1" "$D/ember.out")" -ge "$n" ] && return 0
		sleep 0.05
	done
	echo "never saw '$1' ($n times):" >&2
	cat "$D/ember.out" >&2
	return 1
}

# boot_driver BALLOON_JSON [WORDS]: the test guest with its balloon driver, through the API.
boot_driver() {
	api_start --metrics-path "$D/metrics"
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	# The balloon-* words are the guest's; its "balloon: ..." lines are not on the command line.
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"${2:-balloon-driver}\"}"
	expect_api 204 PUT /balloon "$1"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	wait_out "balloon: ready"
}

# expect_bodiless STATUS METHOD PATH [PATTERN]: expect_api for a request without a body.
expect_bodiless() {
	local out
	out=$(api "$2" "$3")
	if [ "${out##*$'\n'}" != "$1" ] || [[ "$out" != *"${4-}"* ]]; then
		echo "$2 $3 (no body): expected $1 with '${4-}', got: $out" >&2
		return 1
	fi
}

# metric NAME: the balloon group's NAME summed over every metrics line.
metric() {
	jq -s "map(.balloon.$1 // 0) | add" "$D/metrics"
}

@test "PUT /balloon before boot: GET /balloon and GET /vm/config show it, a second PUT replaces it" {
	api_start
	expect_api 400 GET /balloon "" "$NOT_FOUND"
	expect_api 200 GET /vm/config "" '"balloon":null'
	expect_api 204 PUT /balloon '{"amount_mib": 16, "deflate_on_oom": true, "stats_polling_interval_s": 1}'
	expect_api 200 GET /balloon "" '{"amount_mib":16,"deflate_on_oom":true,"stats_polling_interval_s":1}'
	expect_api 200 GET /vm/config "" '"balloon":{"amount_mib":16,"deflate_on_oom":true,"stats_polling_interval_s":1}'
	# The whole object is replaced: the interval defaults to 0 again.
	expect_api 204 PUT /balloon '{"amount_mib": 0, "deflate_on_oom": false}'
	expect_api 200 GET /balloon "" '{"amount_mib":0,"deflate_on_oom":false,"stats_polling_interval_s":0}'
	# free_page_hinting and free_page_reporting (Firecracker's API after v1.10) show only when
	# on.
	expect_api 204 PUT /balloon '{"amount_mib": 2, "deflate_on_oom": false, "free_page_reporting": true, "free_page_hinting": false}'
	expect_api 200 GET /vm/config "" '"balloon":{"amount_mib":2,"deflate_on_oom":false,"stats_polling_interval_s":0,"free_page_reporting":true}'
	expect_api 204 PUT /balloon '{"amount_mib": 2, "deflate_on_oom": false, "free_page_reporting": true, "free_page_hinting": true}'
	expect_api 200 GET /vm/config "" '"balloon":{"amount_mib":2,"deflate_on_oom":false,"stats_polling_interval_s":0,"free_page_hinting":true,"free_page_reporting":true}'
	expect_api 200 GET /balloon "" '{"amount_mib":2,"deflate_on_oom":false,"stats_polling_interval_s":0,"free_page_hinting":true,"free_page_reporting":true}'
	# Firecracker ignores what follows /balloon in a PUT.
	expect_api 204 PUT /balloon/anything '{"amount_mib": 3, "deflate_on_oom": false}'
	expect_api 200 GET /balloon "" '"amount_mib":3'
}

@test "PUT /balloon errors: 400 naming the key, and nothing changes" {
	api_start
	expect_api 204 PUT /balloon '{"amount_mib": 5, "deflate_on_oom": true}'
	expect_api 400 PUT /balloon '{"deflate_on_oom": true}' "balloon: missing field 'amount_mib'"
	expect_api 400 PUT /balloon '{"amount_mib": 1}' "balloon: missing field 'deflate_on_oom'"
	expect_api 400 PUT /balloon '{"amount_mib": -1, "deflate_on_oom": true}' "balloon: field 'amount_mib' is -1, must be between 0 and 4294967295"
	expect_api 400 PUT /balloon '{"amount_mib": "1", "deflate_on_oom": true}' "balloon: field 'amount_mib' must be an integer"
	expect_api 400 PUT /balloon '{"amount_mib": 16777216, "deflate_on_oom": true}' "$TOO_LARGE"
	expect_api 400 PUT /balloon '{"amount_mib": 1, "deflate_on_oom": 1}' "balloon: field 'deflate_on_oom' must be a boolean"
	expect_api 400 PUT /balloon '{"amount_mib": 1, "deflate_on_oom": true, "stats_polling_interval_s": 65536}' "balloon: field 'stats_polling_interval_s' is 65536, must be between 0 and 65535"
	expect_api 400 PUT /balloon '{"amount_mib": 1, "deflate_on_oom": true, "free_page_hinting": 1}' "balloon: field 'free_page_hinting' must be a boolean"
	expect_api 400 PUT /balloon '{"amount_mib": 1, "deflate_on_oom": true, "target": 2}' "balloon: unknown field 'target'"
	expect_api 400 PUT /balloon '[1]' "must be a JSON object"
	expect_api 400 PUT /balloon "" "Empty PUT request."
	expect_api 200 GET /balloon "" '{"amount_mib":5,"deflate_on_oom":true,"stats_polling_interval_s":0}'
}

@test "before boot: PATCH /balloon sets the configured target; /balloon/statistics, /balloon/hinting/*, GET /balloon/statistics and /balloon/hinting/status are post-boot operations; other sub-paths are unknown" {
	api_start
	expect_api 400 PATCH /balloon '{"amount_mib": 1}' "Balloon config error: No balloon device found."
	expect_api 204 PUT /balloon '{"amount_mib": 5, "deflate_on_oom": true, "stats_polling_interval_s": 1, "free_page_hinting": true}'
	expect_api 204 PATCH /balloon '{"amount_mib": 3}'
	expect_api 200 GET /balloon "" '"amount_mib":3'
	expect_api 200 GET /vm/config "" '"amount_mib":3'
	expect_api 400 PATCH /balloon '{"amount_mib": 2, "deflate_on_oom": false}' "balloon: unknown field 'deflate_on_oom'"
	expect_api 400 PATCH /balloon '{"amount_mib": -1}' "amount_mib"
	expect_api 204 PATCH /balloon '{"amount_mib": 5}'
	expect_api 400 PATCH /balloon/statistics '{"stats_polling_interval_s": 2}' "$PRE_BOOT"
	expect_api 400 GET /balloon/statistics "" "$PRE_BOOT"
	expect_bodiless 400 PATCH /balloon/hinting/start "$PRE_BOOT"
	expect_api 400 PATCH /balloon/hinting/start '{"acknowledge_on_stop": false}' "$PRE_BOOT"
	expect_bodiless 400 PATCH /balloon/hinting/stop "$PRE_BOOT"
	expect_api 400 GET /balloon/hinting/status "" "$PRE_BOOT"
	expect_api 400 GET /balloon/stats "" 'Unrecognized GET request path `stats`.'
	expect_api 400 GET /balloon/hinting "" 'Unrecognized GET request path `/hinting/`.'
	expect_api 400 GET /balloon/hinting/stats "" 'Unrecognized GET request path `/hinting/stats`.'
	# Only the hinting commands take a PATCH without a body.
	expect_api 400 PATCH /balloon/statistics "" "Empty PATCH request."
	expect_api 400 PATCH /balloon "" "Empty PATCH request."
	expect_api 200 GET /balloon "" '"amount_mib":5'
}

@test "InstanceStart refuses a balloon larger than guest memory; a smaller one then boots" {
	api_start
	boot_source halt
	expect_api 204 PUT /balloon '{"amount_mib": 65, "deflate_on_oom": false}'
	expect_api 400 PUT /actions '{"action_type": "InstanceStart"}' "$TOO_LARGE"
	expect_api 204 PUT /balloon '{"amount_mib": 64, "deflate_on_oom": false}'
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 200 GET /balloon "" '{"amount_mib":64,"deflate_on_oom":false,"stats_polling_interval_s":0}'
}

@test "after boot with the guest's driver: PATCH inflates (the pages come back zeroed) and deflates; GET shows target and actual; statistics each second" {
	boot_driver '{"amount_mib": 0, "deflate_on_oom": false, "stats_polling_interval_s": 1}' "balloon-oob balloon-driver"
	# PFNs outside guest memory are skipped, the good one in the same request given back.
	wait_out "balloon: oob used=1 reset=0 zeroed=1"
	expect_api 204 PATCH /balloon '{"amount_mib": 1}'
	wait_out "balloon: inflated actual=256 zeroed=256"
	expect_api 200 GET /balloon "" '{"amount_mib":1,"deflate_on_oom":false,"stats_polling_interval_s":1}'
	expect_api 200 GET /vm/config "" '"balloon":{"amount_mib":1,"deflate_on_oom":false,"stats_polling_interval_s":1}'
	# The driver writes actual after the inflate: its next statistics are newer than that.
	wait_out "balloon: stats sent" 3
	out=$(api GET /balloon/statistics)
	echo "$out"
	[ "$(tail -1 <<<"$out")" = 200 ]
	json=$(head -1 <<<"$out")
	[ "$(jq .target_pages <<<"$json")" = 256 ]
	[ "$(jq .actual_pages <<<"$json")" = 256 ]
	[ "$(jq .target_mib <<<"$json")" = 1 ]
	[ "$(jq .actual_mib <<<"$json")" = 1 ]
	[ "$(jq .total_memory <<<"$json")" = 67108864 ]
	[ "$(jq .minor_faults <<<"$json")" -ge 2 ]
	[ "$(jq 'has("swap_in")' <<<"$json")" = false ] # the guest did not send it
	# One statistics round each second: the device returns the buffer, the guest sends again.
	local n0 n1
	n0=$(grep -ac "balloon: stats sent" "$D/ember.out")
	sleep 3
	n1=$(grep -ac "balloon: stats sent" "$D/ember.out")
	echo "statistics rounds in 3 s: $((n1 - n0))"
	[ $((n1 - n0)) -ge 2 ]
	[ $((n1 - n0)) -le 4 ]
	expect_api 204 PATCH /balloon '{"amount_mib": 0}'
	wait_out "balloon: deflated actual=0"
	expect_api 204 PUT /actions '{"action_type": "FlushMetrics"}'
	[ "$(metric inflate_count)" -eq 2 ]
	[ "$(metric deflate_count)" -eq 1 ]
	[ "$(metric event_fails)" -eq 1 ] # the request with PFNs outside memory
	[ "$(metric stats_updates_count)" -ge 4 ]
	[ "$(metric cfg_fails)" -eq 0 ]
	[ "$(metric activate_fails)" -eq 0 ]
	[ "$(jq -s 'map(.patch_api_requests.balloon_count // 0) | add' "$D/metrics")" -eq 2 ]
}

@test "after boot: PATCH errors, statistics cannot be switched, a new interval is taken, PUT is refused" {
	boot_driver '{"amount_mib": 0, "deflate_on_oom": true, "stats_polling_interval_s": 1}'
	expect_api 400 PATCH /balloon '{"amount_mib": 65}' "$TOO_LARGE"
	expect_api 400 PATCH /balloon '{"amount_mib": 1, "deflate_on_oom": false}' "balloon: unknown field 'deflate_on_oom'"
	expect_api 400 PATCH /balloon '{}' "balloon: missing field 'amount_mib'"
	expect_api 400 PATCH /balloon/config '{"amount_mib": 1}' 'Unrecognized PATCH request path `config`.'
	expect_api 400 PATCH /balloon/statistics '{"stats_polling_interval_s": 0}' "Balloon config error: Cannot enable/disable the statistics after boot."
	expect_api 400 PATCH /balloon/statistics '{"amount_mib": 1}' "balloon: unknown field 'amount_mib'"
	expect_api 204 PATCH /balloon/statistics '{"stats_polling_interval_s": 2}'
	expect_api 200 GET /balloon "" '{"amount_mib":0,"deflate_on_oom":true,"stats_polling_interval_s":2}'
	expect_api 200 GET /vm/config "" '"stats_polling_interval_s":2'
	expect_api 400 PUT /balloon '{"amount_mib": 1, "deflate_on_oom": true}' "The requested operation is not supported after starting the microVM."
	expect_api 200 GET /balloon "" '"amount_mib":0'
	kill -0 "$EMBER_PID"
}

@test "free page hinting with the guest's driver: a run's hinted pages go back, DONE on the guest's STOP or on stop, status shows both commands" {
	boot_driver '{"amount_mib": 0, "deflate_on_oom": false, "free_page_hinting": true}'
	wait_out "balloon: ready stats=0 hint=1"
	expect_api 200 GET /balloon/hinting/status "" '{"host_cmd":0}'
	expect_api 200 GET /balloon "" '{"amount_mib":0,"deflate_on_oom":false,"stats_polling_interval_s":0,"free_page_hinting":true}'
	# Without a body acknowledge_on_stop is true: the guest's STOP gets DONE at once.
	expect_bodiless 204 PATCH /balloon/hinting/start
	wait_out "balloon: hinted cmd=2 zeroed=16"
	# The guest hints again after DONE: those pages are its own again, the host leaves them.
	wait_out "balloon: hint done late-zeroed=0"
	expect_api 200 GET /balloon/hinting/status "" '{"host_cmd":1,"guest_cmd":0}'
	expect_api 400 PATCH /balloon/hinting/go '{}' 'Unrecognized PATCH request path `/hinting/go`.'
	expect_bodiless 400 PATCH /balloon/hinting 'Unrecognized PATCH request path `/hinting/`.'
	expect_api 400 PATCH /balloon/hinting/start '{"acknowledge_on_stop": 1}' "balloon: field 'acknowledge_on_stop' must be a boolean"
	# Without acknowledge_on_stop the run's id stays after the guest's STOP, until stop.
	expect_api 204 PATCH /balloon/hinting/start '{"acknowledge_on_stop": false}'
	wait_out "balloon: hinted cmd=3 zeroed=16"
	expect_api 200 GET /balloon/hinting/status "" '{"host_cmd":3,"guest_cmd":0}'
	[ "$(grep -ac "balloon: hint done" "$D/ember.out")" -eq 1 ]
	expect_bodiless 204 PATCH /balloon/hinting/stop
	wait_out "balloon: hint done late-zeroed=0" 2
	expect_api 200 GET /balloon/hinting/status "" '{"host_cmd":1,"guest_cmd":0}'
	expect_api 204 PUT /actions '{"action_type": "FlushMetrics"}'
	[ "$(metric free_page_hint_count)" -eq 2 ]
	[ "$(metric free_page_hint_freed)" -eq $((2 * 16 * 4096)) ]
	[ "$(metric free_page_hint_fails)" -eq 0 ]
	[ "$(metric event_fails)" -eq 0 ]
	[ "$(jq -s 'map(.patch_api_requests.balloon_count // 0) | add' "$D/metrics")" -eq 6 ]
	[ "$(jq -s 'map(.patch_api_requests.balloon_fails // 0) | add' "$D/metrics")" -eq 3 ]
}

@test "free page hinting before the guest's driver starts the device: no commands, status 0" {
	api_start
	boot_source halt
	expect_api 204 PUT /balloon '{"amount_mib": 0, "deflate_on_oom": false, "free_page_hinting": true}'
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	expect_bodiless 400 PATCH /balloon/hinting/start "$HINT_INACTIVE"
	expect_bodiless 400 PATCH /balloon/hinting/stop "$HINT_INACTIVE"
	expect_api 200 GET /balloon/hinting/status "" '{"host_cmd":0}'
}

@test "after boot without a driver in the guest: PATCH says the device is inactive; statistics off: 400" {
	api_start
	boot_source halt
	expect_api 204 PUT /balloon '{"amount_mib": 0, "deflate_on_oom": false}'
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 400 PATCH /balloon '{"amount_mib": 1}' "Balloon config error: Device is inactive, check if balloon driver is enabled in guest kernel."
	expect_api 400 GET /balloon/statistics "" "Balloon config error: Statistics for the balloon device are not enabled"
	expect_api 400 PATCH /balloon/statistics '{"stats_polling_interval_s": 1}' "Balloon config error: Cannot enable/disable the statistics after boot."
	# Hinting off: Firecracker's answer before it looks at the driver.
	expect_bodiless 400 PATCH /balloon/hinting/start "$HINT_OFF"
	expect_bodiless 400 PATCH /balloon/hinting/stop "$HINT_OFF"
	expect_api 400 GET /balloon/hinting/status "" "$HINT_OFF"
	expect_api 200 GET /balloon "" '{"amount_mib":0,"deflate_on_oom":false,"stats_polling_interval_s":0}'
}

@test "after boot without a balloon: every balloon request says there is none" {
	api_start
	boot_source halt
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	expect_api 400 GET /balloon "" "$NOT_FOUND"
	expect_api 400 GET /balloon/statistics "" "$NOT_FOUND"
	expect_api 400 PATCH /balloon '{"amount_mib": 1}' "$NOT_FOUND"
	expect_api 400 PATCH /balloon/statistics '{"stats_polling_interval_s": 1}' "$NOT_FOUND"
	expect_bodiless 400 PATCH /balloon/hinting/start "$HINT_NOT_FOUND"
	expect_api 400 PATCH /balloon/hinting/stop '{}' "$HINT_NOT_FOUND"
	expect_api 400 GET /balloon/hinting/status "" "$HINT_NOT_FOUND"
	expect_api 200 GET /vm/config "" '"balloon":null'
}

@test "--config-file: \"balloon\" creates the device, null means none, a bad one stops ember naming the key" {
	write_device_config "$D/vm.json" "console=ttyS0 balloon-oob" balloon '{ "amount_mib": 0, "deflate_on_oom": false }'
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"balloon: oob used=1 reset=0 zeroed=1"* ]]
	write_device_config "$D/vm.json" "console=ttyS0 balloon-oob" balloon null
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 0 ]
	[[ "$output" == *"balloon: no virtio-balloon device on the command line"* ]]
	write_device_config "$D/vm.json" "console=ttyS0" balloon '{ "amount_mib": 1 }'
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"config file $D/vm.json: balloon: missing field 'deflate_on_oom'"* ]]
}

@test "a snapshot keeps the balloon: target, actual and statistics carry over, and the loaded driver goes on" {
	boot_driver '{"amount_mib": 1, "deflate_on_oom": false, "stats_polling_interval_s": 1}'
	wait_out "balloon: inflated actual=256 zeroed=256"
	wait_out "balloon: stats sent" 2
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 204 PUT /snapshot/create "{\"snapshot_path\": \"$D/s.state\", \"mem_file_path\": \"$D/s.mem\", \"snapshot_type\": \"Full\"}"
	kill -KILL "$EMBER_PID"
	wait "$EMBER_PID" 2>/dev/null || true
	mv "$D/ember.out" "$D/ember.out.first"
	rm -f "$D/api.sock"
	api_start
	expect_api 204 PUT /snapshot/load "{\"snapshot_path\": \"$D/s.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/s.mem\"}, \"resume_vm\": true}"
	expect_api 200 GET /balloon "" '{"amount_mib":1,"deflate_on_oom":false,"stats_polling_interval_s":1}'
	expect_api 200 GET /balloon/statistics "" '"actual_pages":256'
	# The buffer the device held before the snapshot comes back on the loaded timer.
	wait_out "balloon: stats sent" 1
	expect_api 204 PATCH /balloon '{"amount_mib": 0}'
	wait_out "balloon: deflated actual=0"
	expect_api 200 GET /balloon/statistics "" '"actual_pages":0'
}

@test "a snapshot keeps free page hinting: the run's id and the guest's command carry over, stop ends the run on the loaded VM" {
	boot_driver '{"amount_mib": 0, "deflate_on_oom": false, "free_page_hinting": true}'
	expect_api 204 PATCH /balloon/hinting/start '{"acknowledge_on_stop": false}'
	wait_out "balloon: hinted cmd=2 zeroed=16"
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 204 PUT /snapshot/create "{\"snapshot_path\": \"$D/s.state\", \"mem_file_path\": \"$D/s.mem\", \"snapshot_type\": \"Full\"}"
	kill -KILL "$EMBER_PID"
	wait "$EMBER_PID" 2>/dev/null || true
	mv "$D/ember.out" "$D/ember.out.first"
	rm -f "$D/api.sock"
	api_start
	expect_api 204 PUT /snapshot/load "{\"snapshot_path\": \"$D/s.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/s.mem\"}, \"resume_vm\": true}"
	expect_api 200 GET /balloon "" '"free_page_hinting":true'
	expect_api 200 GET /balloon/hinting/status "" '{"host_cmd":2,"guest_cmd":0}'
	expect_bodiless 204 PATCH /balloon/hinting/stop
	wait_out "balloon: hint done late-zeroed=0"
	expect_api 200 GET /balloon/hinting/status "" '{"host_cmd":1,"guest_cmd":0}'
	# The next run's id follows the saved one.
	expect_bodiless 204 PATCH /balloon/hinting/start
	wait_out "balloon: hinted cmd=3 zeroed=16"
}
