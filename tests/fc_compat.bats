#!/usr/bin/env bats
# Firecracker API conformance: a client written for Firecracker must not notice that it talks
# to ember. Each test names the Firecracker behaviour it follows: its integration tests
# (tests/integration_tests/functional/test_api.py, test_pause_resume.py), its API server
# (src/firecracker/src/api_server/parsed_request.rs, request/*.rs), its VMM
# (src/vmm/src/rpc_interface.rs, vmm_config/*.rs), micro_http, and firecracker-go-sdk's start
# sequence (handlers.go, machine.go). The test guest runs on this host.

load lib/common

setup() {
	D=$(scratch_dir)
	EMBER_PID=
	READER=
}

teardown() {
	[ -n "${READER:-}" ] && { kill "$READER" 2>/dev/null; wait "$READER" 2>/dev/null; }
	api_stop
	rm -rf "$D"
}

# body_is METHOD PATH BODY|"" STATUS JSON: the reply is exactly STATUS with JSON (compared
# after jq -S, so key order does not matter).
body_is() {
	local out got want
	if [ -n "$3" ]; then out=$(api "$1" "$2" "$3"); else out=$(api "$1" "$2"); fi
	got=${out%$'\n'*}
	[ "${out##*$'\n'}" = "$4" ] || { echo "$1 $2: status ${out##*$'\n'}, want $4: $got" >&2; return 1; }
	got=$(jq -S -c . <<<"$got") && want=$(jq -S -c . <<<"$5")
	[ "$got" = "$want" ] || { echo "$1 $2: got  $got"$'\n'"want $want" >&2; return 1; }
}

# headers METHOD PATH BODY: the reply's status line and headers.
headers() {
	curl -s -o /dev/null -D - --max-time 10 --unix-socket "$SOCK" -X "$1" \
		-H 'Content-Type: application/json' -d "$3" "http://localhost$2" | tr -d '\r'
}

start_guest() { # a running VM: the test guest halts and stays
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"halt\"}"
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
}

@test "routing: a wrong method or an unknown path is 400 'Invalid request method and/or path' (parsed_request.rs InvalidPathMethod; test_api_patch_pre_boot)" {
	api_start
	body_is GET /nope "" 400 '{"fault_message": "Invalid request method and/or path: GET nope."}'
	body_is PUT /nope/x '{}' 400 '{"fault_message": "Invalid request method and/or path: PUT nope."}'
	# test_api_patch_pre_boot: partial updates of the boot source and logger do not exist.
	expect_api 400 PATCH /boot-source '{"kernel_image_path": "otherfile"}' "Invalid request method"
	expect_api 400 PATCH /logger '{"level": "Error"}' "Invalid request method"
	expect_api 400 GET /vm "" "Invalid request method and/or path: GET vm."
	expect_api 400 POST /actions '{"action_type": "InstanceStart"}' "Invalid request method and/or path: POST actions."
}

@test "routing: ids, trailing slashes, bodies where none belong (parsed_request.rs checked_id, method_to_error)" {
	api_start
	truncate -s 1M "$D/a.img"
	local drive="\"path_on_host\": \"$D/a.img\", \"is_root_device\": false"
	body_is PUT /drives "{\"drive_id\": \"a\", $drive}" 400 '{"fault_message": "The ID cannot be empty."}'
	body_is PUT /drives/ "{\"drive_id\": \"a\", $drive}" 400 '{"fault_message": "The ID cannot be empty."}'
	expect_api 400 PUT /network-interfaces '{"iface_id": "a", "host_dev_name": "t"}' "The ID cannot be empty."
	expect_api 400 PUT /drives/a-b "{\"drive_id\": \"a-b\", $drive}" "API Resource IDs can only contain alphanumeric characters and underscores."
	# The body's id must be the path's (request/drive.rs, request/net.rs).
	body_is PUT /drives/b "{\"drive_id\": \"a\", $drive}" 400 '{"fault_message": "The id from the path does not match the id from the body!"}'
	# A trailing slash on a known path changes nothing.
	expect_api 204 PUT /drives/a/ "{\"drive_id\": \"a\", $drive}"
	expect_api 204 PUT /machine-config/ '{"vcpu_count": 2, "mem_size_mib": 64}'
	expect_api 200 GET /machine-config/ "" '"vcpu_count":2'
	expect_api 200 GET /vm/config/ "" '"drive_id":"a"'
	# A GET with a body, a PUT or PATCH without one.
	body_is GET /machine-config '{}' 400 '{"fault_message": "GET request cannot have a body."}'
	body_is GET /nope '{}' 400 '{"fault_message": "GET request cannot have a body."}'
	body_is PUT /boot-source "" 400 '{"fault_message": "Empty PUT request."}'
	body_is PATCH /machine-config "" 400 '{"fault_message": "Empty PATCH request."}'
}

@test "PUT-time validation: the kernel and initrd are opened at PUT /boot-source (test_api_put_update_pre_boot, vmm_config/boot_source.rs)" {
	api_start
	# Firecracker's words, then the path (ember's messages name the file at fault).
	body_is PUT /boot-source '{"kernel_image_path": "foo.bar"}' 400 \
		'{"fault_message": "Boot source error: The kernel file cannot be opened: No such file or directory (os error 2) [foo.bar]"}'
	expect_api 400 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"initrd_path\": \"$D/none\"}" \
		"Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. No such file or directory (os error 2)"
	expect_api 200 GET /vm/config "" '"kernel_image_path":""'
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\"}"
}

@test "PUT-time validation: PUT /vsock binds uds_path, a path in use is refused there, the same path again is fine (vmm_config/vsock.rs, test_api_vsock)" {
	api_start
	expect_api 204 PUT /vsock "{\"guest_cid\": 15, \"uds_path\": \"$D/v.sock\"}"
	[ -S "$D/v.sock" ]
	# test_api_vsock: updating an existing vsock with the same path is fine.
	expect_api 204 PUT /vsock "{\"guest_cid\": 166, \"uds_path\": \"$D/v.sock\"}"
	: >"$D/taken"
	expect_api 400 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$D/taken\"}" "uds_path $D/taken: already exists"
	expect_api 200 GET /vm/config "" "\"vsock\":{\"guest_cid\":166,\"uds_path\":\"$D/v.sock\"}"
	# A host process can connect as soon as PUT returns; the guest answers once it runs.
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$D/v.sock"
	api_stop
	[ ! -e "$D/v.sock" ]
}

@test "idempotent actions: pausing a paused VM and resuming a running one are 204 (test_pause_resume.py)" {
	api_start
	# Before boot both are refused (test_pause_resume_preboot).
	body_is PATCH /vm '{"state": "Paused"}' 400 '{"fault_message": "The requested operation is not supported before starting the microVM."}'
	body_is PATCH /vm '{"state": "Resumed"}' 400 '{"fault_message": "The requested operation is not supported before starting the microVM."}'
	start_guest
	expect_api 204 PATCH /vm '{"state": "Resumed"}'
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 200 GET / "" '"state":"Paused"'
	expect_api 204 PATCH /vm '{"state": "Resumed"}'
	expect_api 204 PATCH /vm '{"state": "Resumed"}'
	expect_api 200 GET / "" '"state":"Running"'
}

@test "phase rules: PATCH of drives and interfaces only after start; empty PATCHes; FlushMetrics (test_api_patch_pre_boot, test_drive_patch, rpc_interface.rs)" {
	api_start
	truncate -s 1M "$D/a.img"
	truncate -s 1M "$D/b.img"
	expect_api 204 PUT /drives/scratch "{\"drive_id\": \"scratch\", \"path_on_host\": \"$D/a.img\", \"is_root_device\": false}"
	body_is PATCH /drives/scratch "{\"drive_id\": \"scratch\", \"path_on_host\": \"$D/b.img\"}" 400 \
		'{"fault_message": "The requested operation is not supported before starting the microVM."}'
	expect_api 400 PATCH /network-interfaces/eth0 '{"iface_id": "eth0"}' "The requested operation is not supported before starting the microVM."
	body_is PATCH /machine-config '{}' 400 '{"fault_message": "Empty PATCH request."}'
	body_is PUT /actions '{"action_type": "FlushMetrics"}' 400 \
		'{"fault_message": "The requested operation is not supported before starting the microVM."}'
	start_guest
	# After start: FlushMetrics without a metrics sink flushes nothing and succeeds.
	expect_api 204 PUT /actions '{"action_type": "FlushMetrics"}'
	# A PATCH of a virtio-block drive that changes nothing is refused (test_drive_patch).
	expect_api 400 PATCH /drives/scratch '{"drive_id": "scratch"}' "nothing to update"
	expect_api 400 PATCH /drives/scratch '{"drive_id": "scratch", "path_on_host": null}' "nothing to update"
	expect_api 400 PATCH /drives/scratch "{\"drive_id\": \"scratch\", \"path_on_host\": \"$D/b.img\", \"is_read_only\": true}" "unknown field 'is_read_only'"
	expect_api 204 PATCH /drives/scratch "{\"drive_id\": \"scratch\", \"path_on_host\": \"$D/b.img\"}"
	expect_api 400 PATCH /machine-config '{"vcpu_count": 2}' "The requested operation is not supported after starting the microVM."
	expect_api 400 PUT /logger '{"level": "Info"}' "The requested operation is not supported after starting the microVM."
}

@test "serde semantics: an optional field given as null is absent; token buckets, logger levels as Firecracker reads them (vmm_config/mod.rs, logger)" {
	api_start
	truncate -s 1M "$D/a.img"
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"initrd_path\": null, \"boot_args\": null}"
	expect_api 200 GET /vm/config "" '"boot-source":{"kernel_image_path":"'"$TEST_GUEST"'","initrd_path":null,"boot_args":null}'
	expect_api 204 PUT /drives/a "{\"drive_id\": \"a\", \"path_on_host\": \"$D/a.img\", \"is_root_device\": false, \"partuuid\": null, \"rate_limiter\": null, \"socket\": null, \"io_engine\": null, \"cache_type\": null}"
	expect_api 204 PUT /drives/b "{\"drive_id\": \"b\", \"path_on_host\": \"$D/a.img\", \"is_root_device\": false, \"is_read_only\": true, \"rate_limiter\": {\"bandwidth\": null, \"ops\": {\"size\": 10, \"one_time_burst\": null, \"refill_time\": 100}}}"
	# test_rate_limiters_api_config: an empty rate limiter is no rate limiter.
	expect_api 204 PUT /drives/c "{\"drive_id\": \"c\", \"path_on_host\": \"$D/a.img\", \"is_root_device\": false, \"is_read_only\": true, \"rate_limiter\": {}}"
	out=$(api GET /vm/config)
	[ "$(jq -c '.drives[1].rate_limiter' <<<"${out%$'\n'*}")" = '{"bandwidth":null,"ops":{"size":10,"one_time_burst":null,"refill_time":100}}' ]
	[ "$(jq -c '.drives[2].rate_limiter' <<<"${out%$'\n'*}")" = 'null' ]
	expect_api 204 PATCH /machine-config '{"vcpu_count": 2, "smt": null, "cpu_template": null, "huge_pages": null, "track_dirty_pages": null}'
	body_is PATCH /machine-config '{"smt": null}' 400 '{"fault_message": "Empty PATCH request."}'
	expect_api 204 PUT /vsock "{\"guest_cid\": 3, \"uds_path\": \"$D/v.sock\", \"vsock_id\": null}"
	# Logger levels: Firecracker's names in any case, "Warn" too; every field optional.
	local level
	for level in warn Warning WARN info Info DEBUG trace Error off; do
		expect_api 204 PUT /logger "{\"level\": \"$level\"}"
	done
	expect_api 204 PUT /logger '{"log_path": null, "level": null, "show_level": null, "show_log_origin": null, "module": null}'
	expect_api 204 PUT /logger '{}'
	expect_api 400 PUT /logger '{"level": "Loud"}' "invalid level 'Loud'"
}

@test "FIFOs for the logger and metrics work before anyone reads them, as firecracker-go-sdk makes them (handlers.go CreateLogFilesHandler)" {
	mkfifo "$D/log.fifo" "$D/metrics.fifo"
	api_start
	# No reader on either FIFO yet.
	expect_api 204 PUT /logger "{\"log_path\": \"$D/log.fifo\", \"level\": \"Info\", \"show_level\": true, \"show_log_origin\": false}"
	expect_api 204 PUT /metrics "{\"metrics_path\": \"$D/metrics.fifo\"}"
	cat "$D/log.fifo" >"$D/log" &
	READER=$!
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	for _ in $(seq 100); do grep -q '"/machine-config"' "$D/log" && break; sleep 0.05; done
	grep -q 'The API server received a Put request on "/machine-config"' "$D/log"
	# What was logged before the reader came is there too.
	grep -q 'The API server received a Put request on "/metrics"' "$D/log"
	start_guest
	timeout 5 head -c 1 "$D/metrics.fifo" >/dev/null & # a reader for the flush
	expect_api 204 PUT /actions '{"action_type": "FlushMetrics"}'
}

@test "firecracker-go-sdk's start sequence gets the answers it expects (handlers.go defaultFcInitHandlerList, machine.go)" {
	mkfifo "$D/log.fifo" "$D/metrics.fifo"
	truncate -s 4M "$D/root.img"
	api_start
	# StartVMM: waitForSocket polls GET /machine-config.
	expect_api 200 GET /machine-config "" '"vcpu_count":1'
	# CreateLogFiles made the FIFOs; BootstrapLogging: PUT /logger, then PUT /metrics.
	expect_api 204 PUT /logger "{\"log_path\": \"$D/log.fifo\", \"level\": \"Debug\", \"show_level\": true, \"show_log_origin\": false}"
	expect_api 204 PUT /metrics "{\"metrics_path\": \"$D/metrics.fifo\"}"
	cat "$D/log.fifo" >"$D/log" &
	READER=$!
	# CreateMachine, CreateBootSource, AttachDrives, AddVsocks: bodies as the SDK's models
	# marshal them (omitempty).
	expect_api 204 PUT /machine-config '{"vcpu_count":1,"mem_size_mib":64,"smt":false}'
	expect_api 204 PUT /boot-source "{\"kernel_image_path\":\"$TEST_GUEST\",\"boot_args\":\"console=ttyS0 halt\"}"
	expect_api 204 PUT /drives/1 "{\"drive_id\":\"1\",\"path_on_host\":\"$D/root.img\",\"is_root_device\":true,\"is_read_only\":false}"
	expect_api 204 PUT /vsock "{\"guest_cid\":3,\"uds_path\":\"$D/v.sock\"}"
	# Start: InstanceStart, then the SDK asks for the instance.
	expect_api 204 PUT /actions '{"action_type":"InstanceStart"}'
	expect_api 200 GET / "" '"state":"Running"'
	for _ in $(seq 100); do grep -q '"/actions"' "$D/log" && break; sleep 0.05; done
	grep -q 'The API server received a Put request on "/actions" with body "{\\"action_type\\":\\"InstanceStart\\"}".' "$D/log"
}

@test "GET /vm/config, /machine-config and /version have Firecracker's shapes, null where unset (test_get_full_config, test_api_version)" {
	api_start
	body_is GET /version "" 200 '{"firecracker_version": "1.10.0"}'
	body_is GET /machine-config "" 200 '{"vcpu_count": 1, "mem_size_mib": 128, "smt": false, "track_dirty_pages": false, "huge_pages": "None"}'
	body_is GET /vm/config "" 200 '{
	  "balloon": null, "drives": [], "cpu-config": null, "logger": null, "metrics": null,
	  "mmds-config": null, "network-interfaces": [], "vsock": null, "entropy": null,
	  "boot-source": {"kernel_image_path": "", "initrd_path": null, "boot_args": null},
	  "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "smt": false,
	                     "track_dirty_pages": false, "huge_pages": "None"}}'
	truncate -s 1M "$D/root.img"
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"\"}"
	expect_api 204 PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$D/root.img\", \"is_root_device\": true, \"is_read_only\": true}"
	expect_api 204 PUT /drives/scratch "{\"drive_id\": \"scratch\", \"path_on_host\": \"$D/root.img\", \"is_root_device\": false, \"partuuid\": \"0eaa91a0-01\", \"rate_limiter\": {\"bandwidth\": {\"size\": 5000, \"refill_time\": 100}, \"ops\": {\"size\": 500, \"one_time_burst\": 20, \"refill_time\": 100}}}"
	expect_api 204 PUT /vsock "{\"guest_cid\": 15, \"uds_path\": \"$D/v.sock\"}"
	body_is GET /vm/config "" 200 '{
	  "balloon": null, "cpu-config": null, "logger": null, "metrics": null,
	  "mmds-config": null, "network-interfaces": [], "entropy": null,
	  "vsock": {"guest_cid": 15, "uds_path": "'"$D"'/v.sock"},
	  "boot-source": {"kernel_image_path": "'"$TEST_GUEST"'", "initrd_path": null, "boot_args": ""},
	  "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "smt": false,
	                     "track_dirty_pages": false, "huge_pages": "None"},
	  "drives": [
	    {"drive_id": "rootfs", "partuuid": null, "is_root_device": true, "cache_type": "Unsafe",
	     "is_read_only": true, "path_on_host": "'"$D"'/root.img", "rate_limiter": null,
	     "io_engine": "Sync", "socket": null},
	    {"drive_id": "scratch", "partuuid": "0eaa91a0-01", "is_root_device": false,
	     "cache_type": "Unsafe", "is_read_only": false, "path_on_host": "'"$D"'/root.img",
	     "rate_limiter": {"bandwidth": {"size": 5000, "one_time_burst": null, "refill_time": 100},
	                      "ops": {"size": 500, "one_time_burst": 20, "refill_time": 100}},
	     "io_engine": "Sync", "socket": null}]}'
	# ember's own version is in GET / (Firecracker's app_name and vmm_version fields).
	expect_api 200 GET / "" '"vmm_version":"0.1.0","app_name":"ember"'
}

@test "a GET /vm/config fed back as a --config-file boots (Firecracker's VmmConfig takes its own nulls)" {
	api_start
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"console=ttyS0\"}"
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	out=$(api GET /vm/config)
	api_stop
	echo "${out%$'\n'*}" >"$D/vm.json"
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "Deprecation header on deprecated fields, with Firecracker's log line (test_negative_machine_config_api, test_api_vsock)" {
	api_start --level Warning --log-path "$D/log"
	run headers PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256, "cpu_template": "None"}'
	[[ "$output" == "HTTP/1.1 204"*"Deprecation: true"* ]]
	grep -q "PUT /machine-config: cpu_template field is deprecated." "$D/log"
	run headers PATCH /machine-config '{"cpu_template": "None"}'
	[[ "$output" == *"Deprecation: true"* ]]
	grep -q "PATCH /machine-config: cpu_template field is deprecated." "$D/log"
	run headers PUT /vsock "{\"vsock_id\": \"vsock1\", \"guest_cid\": 15, \"uds_path\": \"$D/v.sock\"}"
	[[ "$output" == "HTTP/1.1 204"*"Deprecation: true"* ]]
	grep -q "PUT /vsock: vsock_id field is deprecated." "$D/log"
	# Without the deprecated fields: no header.
	run headers PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256}'
	[[ "$output" != *"Deprecation"* ]]
	run headers PUT /vsock "{\"guest_cid\": 15, \"uds_path\": \"$D/v.sock\"}"
	[[ "$output" != *"Deprecation"* ]]
}

@test "log lines for API requests in Firecracker's words, path and body escaped (parsed_request.rs describe)" {
	api_start --level Info --log-path "$D/log"
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	grep -qF 'The API server received a Put request on "/machine-config" with body "{\"vcpu_count\": 1, \"mem_size_mib\": 64}".' "$D/log"
	grep -qF 'The request was executed successfully. Status code: 204 No Content.' "$D/log"
	expect_api 200 GET /machine-config ""
	grep -qF 'The API server received a Get request on "/machine-config".' "$D/log"
	expect_api 400 PATCH /machine-config '{}'
	grep -qF 'Received Error. Status code: 400 Bad Request. Message: Empty PATCH request.' "$D/log"
	# Control bytes in the path and the body reach the log escaped, never raw.
	python3 - "$SOCK" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
body = b'{"a": "x\ny\x1b[31m\x01"}'
s.sendall(b"PUT /x\x1b[2Jy\x07 HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
print(s.recv(4096).split(b"\r\n")[0].decode())
PY
	for _ in $(seq 50); do grep -q 'x\\u{1b}\[2Jy' "$D/log" && break; sleep 0.05; done
	grep -qF 'The API server received a Put request on "/x\u{1b}[2Jy\u{7}" with body "{\"a\": \"x\ny\u{1b}[31m\u{1}\"}".' "$D/log"
	grep -qF 'Message: Invalid request method and/or path: PUT x\u{1b}[2Jy\u{7}.' "$D/log"
	# A path that is not UTF-8 still gets a JSON fault message (its byte escaped).
	run python3 - "$SOCK" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
s.sendall(b"GET /\x80 HTTP/1.1\r\nConnection: close\r\n\r\n")
out = b""
while chunk := s.recv(4096):
    out += chunk
sys.stdout.write(out.split(b"\r\n\r\n", 1)[1].decode())
PY
	[ "$(jq -r .fault_message <<<"$output")" = 'Invalid request method and/or path: GET \x80.' ]
	# No raw ESC, BEL or SOH byte anywhere in the log, and no line split by the body's newline.
	run env LC_ALL=C grep -q $'[\x1b\x07\x01]' "$D/log"
	[ "$status" -eq 1 ]
	! grep -q '^y' "$D/log"
}

@test "an oversized payload gets micro_http's error body (test_api_payload_size)" {
	api_start --http-api-max-payload-size 250
	run python3 - "$SOCK" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
s.sendall(b"PUT /mmds/config HTTP/1.1\r\nContent-Length: 260\r\nAccept: application/json\r\n\r\n" + b"x" * 260)
out = b""
while True:
    try:
        b = s.recv(4096)
    except socket.timeout:
        break
    if not b:
        break
    out += b
sys.stdout.write(out.decode())
PY
	echo "$output"
	[[ "$output" == "HTTP/1.1 400 "* ]]
	[[ "$output" == *$'Content-Type: application/json\r\n'* ]]
	[[ "$output" == *$'\r\n\r\n{ "error": "Request payload with size 260 is larger than the limit of 250 allowed by server.\nAll previous unanswered requests will be dropped." }' ]]
	expect_api 200 GET / "" "Not started"
}
