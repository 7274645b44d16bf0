#!/usr/bin/env bats
# The HTTP API on a Unix socket, on this host with the freestanding test guest.

load lib/common

setup() {
	D=$(scratch_dir)
	EMBER_PID=
}

teardown() {
	api_stop
	rm -rf "$D"
}

@test "GET / and /version answer before boot" {
	api_start --id api-test-1
	expect_api 200 GET / "" '"state":"Not started"'
	expect_api 200 GET / "" '"id":"api-test-1"'
	expect_api 200 GET / "" '"vmm_version":"0.1.0"'
	expect_api 200 GET /version "" '{"firecracker_version":"1.10.0"}'
}

@test "pre-boot configuration endpoints succeed and GET /vm/config reflects them" {
	api_start
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"halt\"}"
	expect_api 204 PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256, "smt": false}'
	expect_api 204 PATCH /machine-config '{"mem_size_mib": 128}'
	expect_api 200 GET /machine-config "" '"vcpu_count":2,"mem_size_mib":128'
	expect_api 204 PUT /logger "{\"log_path\": \"$D/log\", \"level\": \"Info\"}"
	expect_api 204 PUT /metrics "{\"metrics_path\": \"$D/metrics\"}"
	expect_api 204 PUT /serial "{\"serial_out_path\": \"$D/console\"}"
	out=$(api GET /vm/config)
	[[ "$out" == *"\"kernel_image_path\":\"$TEST_GUEST\""* ]]
	[[ "$out" == *'"boot_args":"halt"'* ]]
	[[ "$out" == *'"mem_size_mib":128'* ]]
	[[ "$out" == *"\"metrics_path\":\"$D/metrics\""* ]]
}

@test "error classes: unknown field, wrong type, out of range, missing body, invalid JSON, not an object" {
	api_start
	expect_api 400 PUT /boot-source '{"kernel_image_path": "k", "bogus": 1}' "unknown field 'bogus'"
	expect_api 400 PUT /boot-source '{"kernel_image_path": 42}' "'kernel_image_path' must be a string"
	expect_api 400 PUT /boot-source '{}' "missing field 'kernel_image_path'"
	expect_api 400 PUT /machine-config '{"vcpu_count": 1}' "missing field 'mem_size_mib'"
	expect_api 400 PUT /machine-config '{"vcpu_count": 64, "mem_size_mib": 128}' "'vcpu_count' is 64, must be between 1 and 32"
	expect_api 400 PATCH /machine-config '{"mem_size_mib": "lots"}' "'mem_size_mib' must be an integer"
	expect_api 400 PATCH /machine-config '{"smt": true, "vcpu_count": 3}' "'vcpu_count' must be 1 or even"
	expect_api 400 PUT /boot-source "" "Empty PUT request."
	expect_api 400 PUT /machine-config '{"vcpu_count": 2,' "invalid JSON at line 1"
	expect_api 400 PUT /machine-config '[1, 2]' "must be a JSON object"
	expect_api 400 PUT /logger '{"level": "Loud"}' "invalid level 'Loud'"
	expect_api 400 PUT /logger '{"log_path": "/nonexistent-dir/log"}' "cannot open /nonexistent-dir/log"
	expect_api 400 PUT /metrics '{"metrics_path": 3}' "'metrics_path'"
	expect_api 400 PUT /actions '{"action_type": "Explode"}' "unknown action_type 'Explode'"
	expect_api 400 PUT /actions '{"action_type": "FlushMetrics"}' "not supported before starting the microVM"
	expect_api 400 PATCH /vm '{"state": "Paused"}' "not supported before starting the microVM"
	expect_api 400 PUT /actions '{"action_type": "SendCtrlAltDel"}' "not supported before starting the microVM"
	expect_api 400 PUT /drives/rootfs '{"drive_id": "rootfs"}' ""
	# A failed request changed nothing.
	expect_api 200 GET /machine-config "" '"vcpu_count":1,"mem_size_mib":128'
}

@test "unknown paths and wrong methods get 400, as Firecracker answers them (fc_compat.bats has the rest)" {
	api_start
	expect_api 400 GET /nope "" "Invalid request method and/or path: GET nope."
	expect_api 400 POST /machine-config '{}' "Invalid request method and/or path: POST machine-config."
	expect_api 400 GET /boot-source "" "Invalid request method and/or path: GET boot-source."
	expect_api 400 PUT / '{}' "Invalid request method and/or path: PUT ."
	expect_api 400 DELETE /actions "" "Invalid request method and/or path: DELETE actions."
}

@test "request bodies over the payload limit are refused, the default and a custom limit" {
	api_start
	big=$(head -c 60000 /dev/zero | tr '\0' ' ')
	expect_api 400 PUT /boot-source "{\"kernel_image_path\": \"k\"$big}" "larger than the limit of 51200"
	api_stop
	rm -f "$SOCK"
	api_start --http-api-max-payload-size 100
	expect_api 400 PUT /boot-source "{\"kernel_image_path\": \"$(printf 'k%.0s' $(seq 120))\"}" "larger than the limit of 100"
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\"}"
}

@test "a malformed request line and oversized headers get 4xx and the server keeps answering" {
	api_start
	reply=$(printf 'THIS IS NOT HTTP\r\n\r\n' | tests/helpers/raw_http.py "$SOCK")
	echo "malformed: $reply"
	[[ "$reply" =~ ^HTTP/1\.[01]\ 4[0-9][0-9] ]]
	huge=$(head -c 40000 /dev/zero | tr '\0' 'x')
	reply=$(printf 'GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n' "$huge" | tests/helpers/raw_http.py "$SOCK")
	echo "headers: $reply"
	[[ "$reply" =~ ^HTTP/1\.[01]\ 4[0-9][0-9] ]]
	expect_api 200 GET / "" "Not started"
}

@test "HTTP: keep-alive, pipelined requests, Expect: 100-continue; chunked bodies get 501" {
	api_start
	# Two requests on one connection, curl reusing it.
	run curl -sv --unix-socket "$SOCK" http://localhost/ http://localhost/version
	[[ "$output" == *"Re-using existing connection"* ]]
	[ "$(grep -c '< HTTP/1.1 200 OK' <<<"$output")" -eq 2 ]
	# Two requests in one write: two replies, in order, on the same connection.
	run python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
body = b"{\"vcpu_count\": 2, \"mem_size_mib\": 64}"
s.sendall(b"PUT /machine-config HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
          b"GET /machine-config HTTP/1.1\r\nConnection: close\r\n\r\n" % (len(body), body))
out = b""
while True:
    b = s.recv(65536)
    if not b: break
    out += b
print(out.decode())' "$SOCK"
	echo "$output"
	[[ "$output" == "HTTP/1.1 204 No Content"*"HTTP/1.1 200 OK"*'"vcpu_count":2'* ]]
	# A client that waits for 100 Continue gets it, then its request is served.
	run curl -sv --unix-socket "$SOCK" -X PUT -H "Expect: 100-continue" \
		-d "{\"kernel_image_path\": \"$TEST_GUEST\"}" http://localhost/boot-source
	[[ "$output" == *"< HTTP/1.1 100 Continue"* ]]
	[[ "$output" == *"< HTTP/1.1 204 No Content"* ]]
	run curl -s --unix-socket "$SOCK" -X PUT -H "Transfer-Encoding: chunked" \
		-d '{"kernel_image_path": "/k"}' -w '%{http_code}' http://localhost/boot-source
	[[ "$output" == *'transfer codings'*501 ]]
	expect_api 200 GET / "" "Not started"
}

@test "fifty concurrent clients all get correct answers" {
	api_start
	pids=()
	for i in $(seq 50); do
		if ((i % 2)); then
			api GET / >"$D/r$i" &
		else
			api PATCH /machine-config "{\"mem_size_mib\": $((128 + i))}" >"$D/r$i" &
		fi
		pids+=($!)
	done
	wait "${pids[@]}"
	for i in $(seq 50); do
		if ((i % 2)); then
			[ "$(tail -1 "$D/r$i")" = 200 ]
			grep -q '"state":"Not started"' "$D/r$i"
		else
			[ "$(tail -1 "$D/r$i")" = 204 ]
		fi
	done
	expect_api 200 GET / "" "Not started"
}

@test "InstanceStart boots the test guest; pre-boot requests are then refused" {
	api_start --boot-timer
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"halt\"}"
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 400); do grep -q halting "$D/ember.out" && break; sleep 0.05; done
	console_text "$D/ember.out" | grep -q "hello from the guest"
	grep -q "Guest-boot-time" "$D/ember.out"
	expect_api 200 GET / "" '"state":"Running"'
	expect_api 400 PUT /actions '{"action_type": "InstanceStart"}' "not supported after starting the microVM"
	expect_api 400 PUT /boot-source '{"kernel_image_path": "k"}' "not supported after starting"
	expect_api 400 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}' "not supported after starting"
	expect_api 400 PUT /metrics "{\"metrics_path\": \"$D/m\"}" "not supported after starting"
	expect_api 204 PUT /actions '{"action_type": "SendCtrlAltDel"}'
	expect_api 200 GET /vm/config "" '"boot_args":"halt"'
}

@test "InstanceStart with a kernel gone since PUT /boot-source fails with 400 and can be retried" {
	api_start
	expect_api 400 PUT /actions '{"action_type": "InstanceStart"}' "no boot source"
	# PUT opens the kernel (fc_compat.bats); InstanceStart opens it again, as it may be gone.
	cp "$TEST_GUEST" "$D/k"
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$D/k\"}"
	rm "$D/k"
	expect_api 400 PUT /actions '{"action_type": "InstanceStart"}' "kernel $D/k: No such file or directory"
	expect_api 200 GET / "" "Not started"
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"halt\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 400); do grep -q halting "$D/ember.out" && break; sleep 0.05; done
	grep -q halting "$D/ember.out"
}

@test "pause stops the guest and resume continues it" {
	api_start
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"spin\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 400); do [ "$(grep -c tick "$D/ember.out")" -ge 2 ] && break; sleep 0.05; done
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 200 GET / "" '"state":"Paused"'
	expect_api 204 PATCH /vm '{"state": "Paused"}' # already paused: still 204, as Firecracker
	before=$(grep -c tick "$D/ember.out")
	sleep 1
	[ "$(grep -c tick "$D/ember.out")" -eq "$before" ] # no progress while paused
	expect_api 204 PATCH /vm '{"state": "Resumed"}'
	expect_api 200 GET / "" '"state":"Running"'
	for _ in $(seq 400); do [ "$(grep -c tick "$D/ember.out")" -gt $((before + 2)) ] && break; sleep 0.05; done
	[ "$(grep -c tick "$D/ember.out")" -gt $((before + 2)) ]
	expect_api 204 PATCH /vm '{"state": "Resumed"}' # running: still 204
	expect_api 400 PATCH /vm '{"state": "Sleeping"}' "must be \\\"Paused\\\" or \\\"Resumed\\\""
}

@test "threads are named: ember_api, and ember_vcpu N for each vCPU once booted" {
	api_start
	expect_api 204 PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 128}'
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"spin\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	names=$(cat /proc/"$EMBER_PID"/task/*/comm | sort)
	echo "$names"
	[ "$(head -1 /proc/"$EMBER_PID"/comm)" = ember ] # the VMM thread keeps the process name
	[ "$(grep -c '^ember_api$' <<<"$names")" -eq 1 ]
	[ "$(grep -c '^ember_vcpu 0$' <<<"$names")" -eq 1 ]
	[ "$(grep -c '^ember_vcpu 1$' <<<"$names")" -eq 1 ]
}

@test "metrics lines parse as JSON and their counters move" {
	api_start
	expect_api 204 PUT /metrics "{\"metrics_path\": \"$D/metrics\"}"
	expect_api 400 PUT /metrics "{\"metrics_path\": \"$D/metrics2\"}" "reinitialization"
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"halt\"}"
	expect_api 400 PUT /boot-source '{"kernel_image_path": 1}' ""
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 400); do grep -q halting "$D/ember.out" && break; sleep 0.05; done
	expect_api 204 PUT /actions '{"action_type": "FlushMetrics"}'
	expect_api 204 PUT /actions '{"action_type": "FlushMetrics"}'
	[ "$(wc -l <"$D/metrics")" -eq 2 ]
	# Every line is one JSON object.
	jq -e 'type == "object"' "$D/metrics" >/dev/null
	first=$(head -1 "$D/metrics")
	[ "$(jq '.put_api_requests.boot_source_count' <<<"$first")" -eq 2 ]
	[ "$(jq '.put_api_requests.boot_source_fails' <<<"$first")" -eq 1 ]
	[ "$(jq '.put_api_requests.metrics_fails' <<<"$first")" -eq 1 ]
	[ "$(jq '.vcpu.exit_io_out' <<<"$first")" -gt 10 ]
	[ "$(jq '.vcpu.exit_mmio_write' <<<"$first")" -ge 1 ]
	# Counts are per interval: the second line saw only the second flush.
	second=$(tail -1 "$D/metrics")
	[ "$(jq '.put_api_requests.actions_count' <<<"$second")" -eq 1 ]
	[ "$(jq '.put_api_requests.boot_source_count' <<<"$second")" -eq 0 ]
}

@test "--metrics-path: the last interval is flushed at exit; a path that cannot open is refused" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "console=ttyS0" 1 64
	run "$EMBER" --no-api --config-file "$D/vm.json" --metrics-path "$D/metrics"
	[ "$status" -eq 0 ]
	[ "$(jq -s 'map(.vcpu.exit_io_out) | add' "$D/metrics")" -gt 10 ]
	run "$EMBER" --no-api --config-file "$D/vm.json" --metrics-path "$D/missing/metrics"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"--metrics-path: metrics: cannot open $D/missing/metrics"* ]]
}

@test "--config-file with Firecracker's logger and metrics objects; their errors name the key" {
	cat >"$D/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$TEST_GUEST", "boot_args": "console=ttyS0" },
  "logger": { "log_path": "$D/log", "level": "Debug", "show_level": true },
  "metrics": { "metrics_path": "$D/metrics" }
}
JSON
	run "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q '\[Debug\]' "$D/log"
	[ "$(jq -s 'map(.vcpu.exit_io_out) | add' "$D/metrics")" -gt 10 ]
	sed -i 's/"level": "Debug"/"level": "Loud"/' "$D/vm.json"
	run "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"config file $D/vm.json: logger: invalid level 'Loud'"* ]]
	sed -i 's/"level": "Loud"/"level": "Info"/; s/"metrics_path"/"path"/' "$D/vm.json"
	run "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 1 ]
	[[ "$output" == *"metrics: expected exactly one string field 'metrics_path'"* ]]
}

@test "logger: log_path, level and show_log_origin shape the log lines" {
	api_start
	expect_api 204 PUT /logger "{\"log_path\": \"$D/log\", \"level\": \"Debug\", \"show_level\": true, \"show_log_origin\": true}"
	expect_api 400 PUT /boot-source '{"kernel_image_path": 1}' ""
	grep -Eq '\[Error\] \[api/request_log\.c:[0-9]+\] Received Error\. Status code: 400 Bad Request\. Message: boot-source: ' "$D/log"
}

@test "the guest's reset ends ember with status 0 and removes the socket" {
	api_start
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	status=0
	wait "$EMBER_PID" || status=$?
	EMBER_PID=
	cat "$D/ember.out"
	echo "status $status"
	[ "$status" -eq 0 ]
	[ ! -e "$SOCK" ]
}

@test "--config-file with the API starts the VM at once and keeps the API open" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "halt" 1 64
	api_start --config-file "$D/vm.json"
	for _ in $(seq 400); do grep -q halting "$D/ember.out" && break; sleep 0.05; done
	expect_api 200 GET / "" '"state":"Running"'
	expect_api 204 PATCH /vm '{"state": "Paused"}'
}

@test "a stale socket file is replaced; a socket in use is refused" {
	SOCK="$D/api.sock"
	python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$SOCK"
	[ -S "$SOCK" ]
	API_KEEP_STALE_SOCKET=1 api_start
	# api_start finds the stale socket at once: wait until ember's own accepts (the stale
	# one refuses; a sanitized ember took long enough for a request to meet it).
	for _ in $(seq 400); do curl -s --unix-socket "$SOCK" http://localhost/ >/dev/null && break; sleep 0.01; done
	expect_api 200 GET / "" "Not started"
	run timeout 5 "$EMBER" --api-sock "$SOCK"
	[ "$status" -eq 1 ]
	[[ "$output" == *"API socket $SOCK is in use by another process"* ]]
	: >"$D/file"
	run timeout 5 "$EMBER" --api-sock "$D/file"
	[ "$status" -eq 1 ]
	[[ "$output" == *"exists and is not a socket"* ]]
}

@test "the socket appears only once it accepts: listen() held back 300 ms, the first connect still succeeds" {
	command -v strace >/dev/null || skip "strace is not installed: it holds listen() back"
	SOCK="$D/api.sock"
	# Before, ember bound the path and then listened: a client connecting as soon as the file
	# appeared met ECONNREFUSED in between (a sanitized ember under load, curl 7 in a full run).
	strace -f -qq -o /dev/null -e trace=listen -e inject=listen:delay_enter=300000 \
		"${UNDER_PTRACE[@]}" "$EMBER" --api-sock "$SOCK" >"$D/ember.out" 2>&1 &
	local tracer=$!
	for _ in $(seq 500); do [ -S "$SOCK" ] && break; sleep 0.005; done
	[ -S "$SOCK" ]
	# teardown ends ember itself (strace holds SIGTERM back while its tracee waits).
	EMBER_PID=$(pgrep -P "$tracer" | head -n 1)
	expect_api 200 GET / "" "Not started"
	# No temporary name is left beside it.
	[ "$(find "$D" -name 'api.sock*' | wc -l)" -eq 1 ]
}

@test "Firecracker's getting-started curl sequence boots the test guest with drives" {
	api_start
	truncate -s 8M "$D/rootfs.img"
	truncate -s 4M "$D/data.img"
	tests/fc-getting-started.sh "$SOCK" "$TEST_GUEST" "$D/rootfs.img" "console=ttyS0 halt" 1 64
	for _ in $(seq 400); do grep -q halting "$D/ember.out" && break; sleep 0.05; done
	cat "$D/ember.out" # bats shows it when the test fails (it failed once in 20 s, sanitized)
	console_text "$D/ember.out" | grep -q "hello from the guest"
	expect_api 200 GET / "" '"state":"Running"'
	expect_api 200 GET /vm/config "" '"drive_id":"rootfs"'
	expect_api 400 PUT /drives/data "{\"drive_id\": \"data\", \"path_on_host\": \"$D/data.img\", \"is_root_device\": false, \"is_read_only\": true}" "not supported after starting"
	# PATCH on a running VM swaps the image behind the drive.
	expect_api 204 PATCH /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$D/data.img\"}"
	expect_api 200 GET /vm/config "" "\"path_on_host\":\"$D/data.img\""
	expect_api 400 PATCH /drives/nope '{"drive_id": "nope", "path_on_host": "/x"}' "nope"
	expect_api 400 PATCH /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$D/missing.img\"}" "missing.img"
	expect_api 200 GET /vm/config "" "\"path_on_host\":\"$D/data.img\""
}

@test "drive endpoints before boot: PUT, PATCH, and their errors" {
	api_start
	truncate -s 4M "$D/a.img"
	expect_api 204 PUT /drives/a "{\"drive_id\": \"a\", \"path_on_host\": \"$D/a.img\", \"is_root_device\": false, \"is_read_only\": false}"
	expect_api 400 PUT /drives/a "{\"drive_id\": \"b\", \"path_on_host\": \"$D/a.img\", \"is_root_device\": false, \"is_read_only\": false}" ""
	expect_api 400 PUT /drives/c '{"drive_id": "c", "path_on_host": 5, "is_root_device": false, "is_read_only": false}' "path_on_host"
	expect_api 400 PUT /drives/c '{"drive_id": "c", "path_on_host": "/x", "is_root_device": false, "is_read_only": false, "bogus": 1}' "bogus"
	# Firecracker: PATCH is for the running VM; before it PUT replaces the drive.
	expect_api 400 PATCH /drives/a '{"drive_id": "a", "rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 100}}}' "not supported before starting the microVM"
	expect_api 200 GET /vm/config "" '"drive_id":"a"'
}

@test "a refill_time whose nanoseconds overflow is refused (it wrapped to 0, a SIGFPE at the first request)" {
	api_start
	truncate -s 4M "$D/a.img"
	local drive="\"drive_id\": \"a\", \"path_on_host\": \"$D/a.img\", \"is_root_device\": false"
	local rl='"rate_limiter": {"ops": {"size": 1, "refill_time": 288230376151711744}}'
	expect_api 400 PUT /drives/a "{$drive, $rl}" "'refill_time' must be at most 18446744073709"
	expect_api 204 PUT /drives/a "{$drive}"
	expect_api 200 GET / "" '"state":"Not started"'
}
