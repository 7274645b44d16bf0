#!/usr/bin/env bats
# The serial console's limits (issue 11, finding 7): Firecracker's "rate_limiter" on
# PUT /serial and the config file's "serial" object, a token bucket of bytes beyond which
# guest output is dropped and counted in the "uart" metrics; and the boot timer, which logs
# the guest's first write only. The freestanding test guest: "uart-flood" prints 16 KiB,
# "boot-timer-repeat" writes the boot timer 1000 more times.

load lib/common

setup() {
	D=$(scratch_dir)
	EMBER_PID=
}

teardown() {
	api_stop
	rm -rf "$D"
}

# flood_run SERIAL_JSON: the flooding guest with that "serial" object and a metrics file;
# sets CONSOLE (bytes in the console file), WRITTEN and DROPPED (the uart metrics, summed).
flood_run() {
	rm -f "$D/console" "$D/metrics"
	cat >"$D/vm.json" <<JSON
{ "boot-source": { "kernel_image_path": "$TEST_GUEST", "boot_args": "uart-flood" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 64 },
  "serial": $1 }
JSON
	run timeout 30 "$EMBER" --no-api --config-file "$D/vm.json" --metrics-path "$D/metrics"
	echo "$output"
	[ "$status" -eq 0 ]
	CONSOLE=$(wc -c <"$D/console")
	WRITTEN=$(jq -s 'map(.uart.write_count) | add' "$D/metrics")
	DROPPED=$(jq -s 'map(.uart.rate_limiter_dropped_bytes) | add' "$D/metrics")
	echo "console $CONSOLE bytes, uart.write_count $WRITTEN, uart.rate_limiter_dropped_bytes $DROPPED"
}

@test "rate_limiter caps the console's bytes; the rest is dropped and counted in uart metrics" {
	flood_run "{ \"serial_out_path\": \"$D/console\" }"
	local total=$CONSOLE
	[ "$total" -gt 16000 ] # the hello line and 16640 bytes of flood
	[ "$WRITTEN" -eq "$total" ]
	[ "$DROPPED" -eq 0 ]
	# 1000 bytes, refilled over an hour: a run of a second or so earns under one more.
	flood_run "{ \"serial_out_path\": \"$D/console\", \"rate_limiter\": { \"size\": 1000, \"refill_time\": 3600000 } }"
	[ "$CONSOLE" -ge 1000 ]
	[ "$CONSOLE" -le 1005 ]
	[ "$WRITTEN" -eq "$CONSOLE" ]
	[ $((WRITTEN + DROPPED)) -eq "$total" ]
	grep -q "hello from the guest" "$D/console" # the first bytes went out, the rest did not
	# one_time_burst comes on top, once.
	flood_run "{ \"serial_out_path\": \"$D/console\", \"rate_limiter\": { \"size\": 1000, \"one_time_burst\": 500, \"refill_time\": 3600000 } }"
	[ "$CONSOLE" -ge 1500 ]
	[ "$CONSOLE" -le 1505 ]
	[ $((WRITTEN + DROPPED)) -eq "$total" ]
	# size 0 or refill_time 0: no limit, as in Firecracker.
	flood_run "{ \"serial_out_path\": \"$D/console\", \"rate_limiter\": { \"size\": 0, \"refill_time\": 100 } }"
	[ "$CONSOLE" -eq "$total" ]
}

@test "PUT /serial: a rate_limiter alone limits the console on stdout; bad fields are 400 with fault_message; pre-boot only" {
	api_start
	expect_api 400 PUT /serial '{"serial_out_path": "x", "bogus": 1}' "unknown field 'bogus'"
	# A TokenBucket, not a RateLimiter: its fields are size, one_time_burst, refill_time.
	expect_api 400 PUT /serial '{"rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1}}}' "unknown field 'bandwidth'"
	expect_api 400 PUT /serial '{"rate_limiter": {"size": 1000}}' "missing field 'refill_time'"
	expect_api 400 PUT /serial '{"rate_limiter": {"size": -1, "refill_time": 1}}' "'size' must be a non-negative integer"
	expect_api 400 PUT /serial '{"rate_limiter": 5}' "rate_limiter must be an object"
	expect_api 400 PUT /serial '{"serial_out_path": 5}' "'serial_out_path' must be a string"
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"uart-flood halt\"}"
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 204 PUT /serial '{"rate_limiter": {"size": 1000, "refill_time": 3600000}}'
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	# The guest floods for under a second here; its first 1000 bytes go out at once, and
	# its last line ("halting") must not.
	sleep 2
	expect_api 400 PUT /serial "{\"serial_out_path\": \"$D/c\"}" "not supported after starting"
	api_stop
	cat "$D/ember.out"
	console_text "$D/ember.out" | grep -q "hello from the guest"
	# 1000 bytes hold the hello line and 14 lines of 65 bytes, not the 256 the guest printed.
	flood=$(grep -c "ember test guest: flood" "$D/ember.out")
	[ "$flood" -ge 14 ]
	[ "$flood" -le 15 ]
	! grep -q halting "$D/ember.out"
}

@test "--boot-timer logs the guest's first boot-timer write only, and says once that it wrote again" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "boot-timer-repeat" 1 64
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json" --boot-timer
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c "Guest-boot-time = " <<<"$output")" -eq 1 ]
	[ "$(grep -c "Guest wrote the boot timer again: this and later writes are not logged" <<<"$output")" -eq 1 ]
}
