#!/usr/bin/env bats
# The entropy device's configuration with the freestanding test guest: PUT /entropy
# (Firecracker's body: an optional rate_limiter), GET /vm/config, the config file's
# "entropy", the errors that name the key, and the phase rule (pre-boot only).

load lib/common

setup() {
	D=$(scratch_dir)
	EMBER_PID=
}

teardown() {
	api_stop
	rm -rf "$D"
}

@test "PUT /entropy before boot: GET /vm/config shows it, a second PUT replaces it" {
	api_start
	expect_api 200 GET /vm/config "" '"entropy":null'
	expect_api 204 PUT /entropy '{}'
	expect_api 200 GET /vm/config "" '"entropy":{}'
	expect_api 204 PUT /entropy '{"rate_limiter": {"bandwidth": {"size": 1000, "one_time_burst": 500, "refill_time": 100}, "ops": {"size": 10, "refill_time": 1000}}}'
	expect_api 200 GET /vm/config "" '"entropy":{"rate_limiter":{"bandwidth":{"size":1000,"refill_time":100,"one_time_burst":500},"ops":{"size":10,"refill_time":1000}}}'
	# The whole object is replaced: the ops bucket of the first PUT is gone.
	expect_api 204 PUT /entropy '{"rate_limiter": {"bandwidth": {"size": 2000, "refill_time": 50}}}'
	expect_api 200 GET /vm/config "" '"entropy":{"rate_limiter":{"bandwidth":{"size":2000,"refill_time":50}}}'
	# A bucket of size 0 does not limit, as in Firecracker: nothing to show.
	expect_api 204 PUT /entropy '{"rate_limiter": {"ops": {"size": 0, "refill_time": 100}}}'
	expect_api 200 GET /vm/config "" '"entropy":{}'
	expect_api 400 GET /entropy "" "Invalid request method and/or path: GET entropy."
	expect_api 400 PATCH /entropy '{}' "Invalid request method and/or path: PATCH entropy."
}

@test "PUT /entropy errors: each class gets 400 naming the key, and changes nothing" {
	api_start
	local limited='{"rate_limiter": {"ops": {"size": 5, "refill_time": 10}}}'
	expect_api 204 PUT /entropy "$limited"
	expect_api 400 PUT /entropy '{"rate": 1}' "entropy: unknown field 'rate'"
	expect_api 400 PUT /entropy '{"rate_limiter": 5}' "entropy: rate_limiter must be an object"
	expect_api 400 PUT /entropy '{"rate_limiter": {"bw": {}}}' "entropy: rate_limiter: unknown field 'bw'"
	expect_api 400 PUT /entropy '{"rate_limiter": {"bandwidth": 1}}' "entropy: rate_limiter.bandwidth must be an object"
	expect_api 400 PUT /entropy '{"rate_limiter": {"bandwidth": {"size": 100}}}' "entropy: rate_limiter.bandwidth: missing field 'refill_time'"
	expect_api 400 PUT /entropy '{"rate_limiter": {"ops": {"refill_time": 100}}}' "entropy: rate_limiter.ops: missing field 'size'"
	expect_api 400 PUT /entropy '{"rate_limiter": {"ops": {"size": -1, "refill_time": 100}}}' "entropy: rate_limiter.ops: field 'size' must be a non-negative integer"
	expect_api 400 PUT /entropy '{"rate_limiter": {"ops": {"size": 1.5, "refill_time": 100}}}' "entropy: rate_limiter.ops: field 'size' must be a non-negative integer"
	expect_api 400 PUT /entropy '{"rate_limiter": {"ops": {"size": 1, "refill_time": 100, "burst": 1}}}' "entropy: rate_limiter.ops: unknown field 'burst'"
	expect_api 400 PUT /entropy '{"rate_limiter": {"ops": {"size": 1, "refill_time": 18446744073709552}}}' "entropy: rate_limiter.ops: field 'refill_time' must be at most 18446744073709"
	expect_api 400 PUT /entropy '[1]' "must be a JSON object"
	expect_api 400 PUT /entropy "" "Empty PUT request."
	expect_api 400 PUT /entropy '{"rate_limiter": ' "An error occurred when deserializing the json body"
	expect_api 200 GET /vm/config "" '"entropy":{"rate_limiter":{"ops":{"size":5,"refill_time":10}}}'
}

@test "PUT /entropy after InstanceStart is refused like the other pre-boot-only endpoints; the device configured before is kept" {
	api_start --metrics-path "$D/metrics"
	boot_source "console=ttyS0 rng-read halt"
	expect_api 204 PUT /entropy '{}'
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 100); do grep -q halting "$D/ember.out" && break; sleep 0.05; done
	grep -q "rng: read used1=64 used2=64" "$D/ember.out"
	expect_api 400 PUT /entropy '{}' "The requested operation is not supported after starting the microVM."
	expect_api 400 PUT /entropy '{"rate_limiter": {"ops": {"size": 1, "refill_time": 1}}}' "The requested operation is not supported after starting the microVM."
	expect_api 200 GET /vm/config "" '"entropy":{}'
	# The API's request metrics count them: one good PUT, two refused.
	expect_api 204 PUT /actions '{"action_type": "FlushMetrics"}'
	[ "$(jq -s 'map(.put_api_requests.entropy_count) | add' "$D/metrics")" -eq 3 ]
	[ "$(jq -s 'map(.put_api_requests.entropy_fails) | add' "$D/metrics")" -eq 2 ]
	kill -0 "$EMBER_PID"
}

@test "--config-file: \"entropy\" creates the device, null or no key means none, a bad one stops ember naming the key" {
	write_device_config "$D/vm.json" "console=ttyS0 rng-read" entropy '{ "rate_limiter": { "bandwidth": { "size": 1048576, "refill_time": 100 } } }'
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"rng: read used1=64 used2=64"* ]]
	[[ "$output" == *"rng: big used=65536"* ]]
	write_device_config "$D/vm.json" "console=ttyS0 rng-read" entropy null
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 0 ]
	[[ "$output" == *"rng: no virtio-rng device on the command line"* ]]
	write_device_config "$D/vm.json" "console=ttyS0" entropy '{ "rate_limiter": { "ops": { "size": 1 } } }'
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"config file $D/vm.json: entropy: rate_limiter.ops: missing field 'refill_time'"* ]]
	write_device_config "$D/vm.json" "console=ttyS0" entropy '{ "rate_limiter": {}, "extra": true }'
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"config file $D/vm.json: entropy: unknown field 'extra'"* ]]
	write_device_config "$D/vm.json" "console=ttyS0" entropy '[]'
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"config file $D/vm.json: entropy: expected a JSON object"* ]]
}

@test "--config-file with \"entropy\" and the API: GET /vm/config shows what the file said" {
	write_device_config "$D/vm.json" "console=ttyS0 halt" entropy '{ "rate_limiter": { "ops": { "size": 100, "one_time_burst": 7, "refill_time": 1000 } } }'
	api_start --config-file "$D/vm.json"
	for _ in $(seq 100); do grep -q halting "$D/ember.out" && break; sleep 0.05; done
	expect_api 200 GET /vm/config "" '"entropy":{"rate_limiter":{"ops":{"size":100,"refill_time":1000,"one_time_burst":7}}}'
	expect_api 400 PUT /entropy '{}' "not supported after starting the microVM"
}
