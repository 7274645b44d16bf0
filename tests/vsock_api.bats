#!/usr/bin/env bats
# virtio-vsock configuration on this host with the freestanding test guest: PUT /vsock
# (Firecracker's body: guest_cid, uds_path, optional vsock_id), GET /vm/config, the config
# file's "vsock", and the errors that name the key or the path.

load lib/common

setup() {
	D=$(scratch_dir)
	EMBER_PID=
	PID2=
}

teardown() {
	api_stop
	[ -n "${PID2:-}" ] && { kill "$PID2" 2>/dev/null; wait "$PID2" 2>/dev/null; }
	rm -rf "$D"
}

@test "PUT /vsock before boot: GET /vm/config shows it, a second PUT replaces it" {
	api_start
	expect_api 200 GET /vm/config "" '"vsock":null'
	expect_api 204 PUT /vsock "{\"vsock_id\": \"vsock0\", \"guest_cid\": 3, \"uds_path\": \"$D/v.sock\"}"
	expect_api 200 GET /vm/config "" "\"vsock\":{\"guest_cid\":3,\"uds_path\":\"$D/v.sock\",\"vsock_id\":\"vsock0\"}"
	# Bound at PUT, as Firecracker binds it (fc_compat.bats); a second PUT moves it.
	[ -S "$D/v.sock" ]
	# Firecracker: the second PUT replaces the whole object (vsock_id included).
	expect_api 204 PUT /vsock "{\"guest_cid\": 4294967295, \"uds_path\": \"$D/w.sock\"}"
	expect_api 200 GET /vm/config "" "\"vsock\":{\"guest_cid\":4294967295,\"uds_path\":\"$D/w.sock\"}"
	[ ! -e "$D/v.sock" ]
	[ -S "$D/w.sock" ]
	expect_api 400 GET /vsock "" "Invalid request method and/or path: GET vsock."
}

@test "PUT /vsock errors: each class gets 400 naming the key or path, and changes nothing" {
	api_start
	local long
	long="$D/$(printf 's%.0s' $(seq 100))"
	expect_api 204 PUT /vsock "{\"guest_cid\": 7, \"uds_path\": \"$D/v.sock\"}"
	expect_api 400 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$D/v.sock\", \"cid\": 3}" "vsock: unknown field 'cid'"
	expect_api 400 PUT /vsock "{\"uds_path\": \"$D/v.sock\"}" "vsock: missing field 'guest_cid'"
	expect_api 400 PUT /vsock "{\"guest_cid\": \"3\", \"uds_path\": \"$D/v.sock\"}" "vsock: field 'guest_cid' must be an integer"
	expect_api 400 PUT /vsock "{\"guest_cid\": 3.5, \"uds_path\": \"$D/v.sock\"}" "vsock: field 'guest_cid' must be an integer"
	expect_api 400 PUT /vsock "{\"guest_cid\": 2, \"uds_path\": \"$D/v.sock\"}" "vsock: field 'guest_cid' is 2, must be between 3 and 4294967295"
	expect_api 400 PUT /vsock "{\"guest_cid\": -1, \"uds_path\": \"$D/v.sock\"}" "vsock: field 'guest_cid' is -1, must be between 3 and 4294967295"
	expect_api 400 PUT /vsock "{\"guest_cid\": 4294967296, \"uds_path\": \"$D/v.sock\"}" "vsock: field 'guest_cid' is 4294967296, must be between 3 and 4294967295"
	# Beyond what a JSON integer can hold here: refused as invalid JSON.
	expect_api 400 PUT /vsock "{\"guest_cid\": 100000000000000000000, \"uds_path\": \"$D/v.sock\"}" "invalid JSON"
	expect_api 400 PUT /vsock '{"guest_cid": 3}' "vsock: missing field 'uds_path'"
	expect_api 400 PUT /vsock '{"guest_cid": 3, "uds_path": ["a"]}' "vsock: field 'uds_path' must be a string"
	expect_api 400 PUT /vsock '{"guest_cid": 3, "uds_path": ""}' "vsock: field 'uds_path' is empty"
	expect_api 400 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$long\"}" "vsock: field 'uds_path' is ${#long} bytes, at most 96 fit a Unix socket address"
	expect_api 400 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$D/nodir/v.sock\"}" "vsock: uds_path $D/nodir/v.sock: directory $D/nodir does not exist"
	: >"$D/file"
	expect_api 400 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$D/file/v.sock\"}" "vsock: uds_path $D/file/v.sock: $D/file is not a directory"
	expect_api 400 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$D/\"}" "names a directory, not a socket file"
	expect_api 400 PUT /vsock "{\"vsock_id\": 1, \"guest_cid\": 3, \"uds_path\": \"$D/v.sock\"}" "vsock: field 'vsock_id' must be a string"
	expect_api 400 PUT /vsock '[3]' "must be a JSON object"
	expect_api 400 PUT /vsock "" "Empty PUT request."
	expect_api 200 GET /vm/config "" "\"vsock\":{\"guest_cid\":7,\"uds_path\":\"$D/v.sock\"}"
}

@test "PUT /vsock after InstanceStart is refused like the other pre-boot-only endpoints" {
	api_start
	boot_source halt
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 400); do grep -q halting "$D/ember.out" && break; sleep 0.05; done
	console_text "$D/ember.out" | grep -q "hello from the guest"
	expect_api 400 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$D/v.sock\"}" "The requested operation is not supported after starting the microVM."
	expect_api 200 GET /vm/config "" '"vsock":null'
	[ ! -e "$D/v.sock" ]
}

@test "--config-file: a bad \"vsock\" stops ember with the key named; null means no device" {
	write_device_config "$D/vm.json" "console=ttyS0" vsock "{ \"guest_cid\": 1, \"uds_path\": \"$D/v.sock\" }"
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"config file $D/vm.json: vsock: field 'guest_cid' is 1, must be between 3 and 4294967295"* ]]
	write_device_config "$D/vm.json" "console=ttyS0" vsock "{ \"guest_cid\": 3, \"uds_path\": \"$D/v.sock\", \"port\": 1 }"
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"vsock: unknown field 'port'"* ]]
	write_device_config "$D/vm.json" "console=ttyS0" vsock "{ \"guest_cid\": 3, \"uds_path\": \"$D/nodir/v.sock\" }"
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"vsock: uds_path $D/nodir/v.sock: directory $D/nodir does not exist"* ]]
	write_device_config "$D/vm.json" "console=ttyS0" vsock "{ \"uds_path\": \"$D/v.sock\" }"
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"vsock: missing field 'guest_cid'"* ]]
	write_device_config "$D/vm.json" "console=ttyS0" vsock null
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from the guest"* ]]
}

@test "InstanceStart with a vsock boots the test guest and binds uds_path; a second ember on the same uds_path fails naming it" {
	api_start
	boot_source halt
	expect_api 204 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$D/v.sock\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 400); do grep -q halting "$D/ember.out" && break; sleep 0.05; done
	console_text "$D/ember.out" | grep -q "hello from the guest"
	[ -S "$D/v.sock" ]
	expect_api 200 GET / "" '"state":"Running"'
	write_device_config "$D/vm2.json" "console=ttyS0" vsock "{ \"guest_cid\": 4, \"uds_path\": \"$D/v.sock\" }"
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm2.json"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"uds_path $D/v.sock"*"exists"* ]]
	# The first VM and its socket are untouched.
	kill -0 "$EMBER_PID"
	[ -S "$D/v.sock" ]
}
