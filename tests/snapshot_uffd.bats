#!/usr/bin/env bats
# Snapshot load with the Uffd memory backend (Firecracker's hand-off), the freestanding
# counting test guest on this host's /dev/kvm, and ember's page fault handler
# (build/ember-uffd-handler): the guest counts on with every page it touches served by the
# handler; a missing socket, a bad backend and a handler that goes away are each reported,
# and the API never hangs.

load lib/common
load lib/counting

HANDLER="${EMBER_BUILD:-$EMBER_ROOT/build}/ember-uffd-handler"
SILENT="$EMBER_ROOT/tests/helpers/uffd_silent.py"

setup() {
	D=$(scratch_dir)
	EMBER_PID=
	HANDLER_PID=
}

teardown() {
	# A broken build may leave a vCPU waiting for a page for ever: SIGKILL after 5 s.
	if [ -n "$EMBER_PID" ]; then
		kill -TERM "$EMBER_PID" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$EMBER_PID" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$EMBER_PID" 2>/dev/null || true
	fi
	api_stop
	if [ -n "$HANDLER_PID" ]; then
		kill "$HANDLER_PID" 2>/dev/null || true
		wait "$HANDLER_PID" 2>/dev/null || true
	fi
	rm -rf "$D"
}

# uffd_body NAME SOCKET RESUME: a Uffd load request for $D/NAME.state.
uffd_body() {
	echo "{\"snapshot_path\": \"$D/$1.state\", \"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": \"$2\"}, \"resume_vm\": $3}"
}

# start_handler CMD...: runs a handler in the background (output in $D/handler.out) and
# waits for its socket $D/h.sock.
start_handler() {
	"$@" >"$D/handler.out" 2>&1 &
	HANDLER_PID=$!
	for _ in $(seq 200); do [ -S "$D/h.sock" ] && return 0; sleep 0.025; done
	echo "the handler never listened:" >&2
	cat "$D/handler.out" >&2
	return 1
}

# ember_exit_status TIMEOUT_S: waits for ember to end; its status in EXIT (none: fails).
ember_exit_status() {
	for _ in $(seq $(($1 * 20))); do
		kill -0 "$EMBER_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$EMBER_PID" 2>/dev/null; then
		echo "ember did not end within $1 s" >&2
		return 1
	fi
	EXIT=0
	wait "$EMBER_PID" || EXIT=$?
	EMBER_PID=
}

@test "a counting guest loaded through the page fault handler counts on; the handler served its pages" {
	good_snapshot
	start_handler "$HANDLER" "$D/h.sock" "$D/good.mem"
	expect_api 204 PUT /snapshot/load "$(uffd_body good "$D/h.sock" true)"
	wait_count "$D/ember.out" $((SAVED + 3))
	first=$(first_count "$D/ember.out")
	echo "saved at $SAVED, restored guest printed $first first"
	[ "$first" -gt "$SAVED" ]
	[ "$first" -le $((SAVED + 2)) ]
	grep -q "guest memory (1 regions) handed to the page fault handler at $D/h.sock" "$D/ember.out"
	# Every thread of ember is filtered, the connection's watcher too.
	for t in /proc/"$EMBER_PID"/task/*; do
		[ "$(awk '$1 == "Seccomp:" { print $2 }' "$t/status")" = 2 ]
	done
	[ "$(ls /proc/"$EMBER_PID"/task | wc -l)" -ge 4 ] # main, API, vCPU, watcher
	api_stop
	# ember's end closes the connection: the handler reports and exits 0.
	wait "$HANDLER_PID"
	HANDLER_PID=
	cat "$D/handler.out"
	grep -q "handed over 1 regions, 128 MiB" "$D/handler.out"
	served=$(sed -n 's/.*done: \([0-9]*\) faults served.*/\1/p' "$D/handler.out")
	copied=$(sed -n 's/.* (\([0-9]*\) pages copied.*/\1/p' "$D/handler.out")
	[ "$served" -gt 0 ]
	[ "$copied" -gt 0 ]
}

@test "a missing socket is a 400 naming it, and a File load in the same process works after" {
	good_snapshot
	expect_api 400 PUT /snapshot/load "$(uffd_body good "$D/nope.sock" true)" \
		"Load snapshot error: backend_path $D/nope.sock: cannot connect to the page fault handler: No such file or directory"
	expect_api 200 GET / "" '"state":"Not started"'
	# Not a socket: refused too.
	expect_api 400 PUT /snapshot/load "$(uffd_body good "$D/good.mem" true)" \
		"cannot connect to the page fault handler: Connection refused"
	expect_api 400 PUT /snapshot/load "$(uffd_body good "$D/$(printf 'x%.0s' $(seq 120))" true)" \
		"longer than 107 bytes"
	expect_api 204 PUT /snapshot/load "{\"snapshot_path\": \"$D/good.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/good.mem\"}, \"resume_vm\": true}"
	wait_count "$D/ember.out" $((SAVED + 2))
}

@test "a handler that takes the hand-off and closes without serving: the API answers, then ember stops with status 3" {
	good_snapshot
	start_handler python3 "$SILENT" "$D/h.sock" "$D/trigger"
	expect_api 204 PUT /snapshot/load "$(uffd_body good "$D/h.sock" true)"
	# The vCPU waits for its first page; the API is not held up by it.
	sleep 0.3
	expect_api 200 GET / "" '"state":"Running"'
	[ "$(last_count "$D/ember.out")" -eq 0 ]
	grep -q '"page_size": 4096' "$D/handler.out"
	# A pause waits for the vCPU to park: it is answered once the handler is gone.
	api PATCH /vm '{"state": "Paused"}' >"$D/pause.out" &
	pause=$!
	sleep 0.3
	touch "$D/trigger"
	ember_exit_status 5
	wait "$pause"
	cat "$D/ember.out"
	[ "$EXIT" -eq 3 ]
	grep -q "the page fault handler closed its connection before every page of guest memory was in place" "$D/ember.out"
	[ "$(last_count "$D/ember.out")" -eq 0 ]
}

@test "a handler that closes at once: the load is refused or ember stops with status 3, never a hang" {
	good_snapshot
	touch "$D/trigger"
	start_handler python3 "$SILENT" "$D/h.sock" "$D/trigger"
	out=$(api PUT /snapshot/load "$(uffd_body good "$D/h.sock" true)")
	echo "$out"
	if [[ "$out" == *400 ]]; then
		[[ "$out" == *"Load snapshot error: "* ]]
		expect_api 200 GET / "" '"state":"Not started"'
		# Nothing of that load is left: a File load works.
		expect_api 204 PUT /snapshot/load "{\"snapshot_path\": \"$D/good.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/good.mem\"}, \"resume_vm\": true}"
		wait_count "$D/ember.out" $((SAVED + 2))
	else
		[[ "$out" == *204 ]]
		ember_exit_status 5
		[ "$EXIT" -eq 3 ]
	fi
}

@test "the VMM thread waiting for a page the handler never serves (a snapshot create) is let go when it leaves" {
	good_snapshot
	start_handler python3 "$SILENT" "$D/h.sock" "$D/trigger"
	expect_api 204 PUT /snapshot/load "$(uffd_body good "$D/h.sock" false)"
	# Paused: nothing faulted yet. A snapshot reads every page that is not present, on the
	# VMM thread: it waits for the handler, and so does the request.
	api PUT /snapshot/create "{\"snapshot_path\": \"$D/again.state\", \"mem_file_path\": \"$D/again.mem\"}" >"$D/create.out" &
	create=$!
	sleep 1
	[ ! -s "$D/create.out" ]
	touch "$D/trigger"
	ember_exit_status 5
	wait "$create"
	cat "$D/create.out" "$D/ember.out"
	[ -s "$D/create.out" ]
	[ "$EXIT" -eq 3 ]
	grep -q "closed its connection before every page of guest memory was in place" "$D/ember.out"
}

@test "a snapshot of a VM loaded through the handler holds the pages the handler had not served yet" {
	good_snapshot
	start_handler "$HANDLER" "$D/h.sock" "$D/good.mem"
	# Paused: the guest touched nothing, every page is still with the handler.
	expect_api 204 PUT /snapshot/load "$(uffd_body good "$D/h.sock" false)"
	# Each of the 32768 pages is a fault the handler serves: 11 s and more in a loaded
	# emulated host.
	API_MAX_TIME=120 expect_api 204 PUT /snapshot/create "{\"snapshot_path\": \"$D/again.state\", \"mem_file_path\": \"$D/again.mem\"}"
	cmp "$D/good.mem" "$D/again.mem"
	api_stop
	rm -f "$D/api.sock"
	api_start
	expect_api 204 PUT /snapshot/load "{\"snapshot_path\": \"$D/again.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/again.mem\"}, \"resume_vm\": true}"
	wait_count "$D/ember.out" $((SAVED + 2))
}

@test "the handler refuses a hand-off it cannot trust" {
	truncate -s 1M "$D/m"
	# (Each case: a client sends JSON and a descriptor; the handler must fail, naming why.)
	try_handoff() {
		rm -f "$D/h.sock"
		start_handler "$HANDLER" "$D/h.sock" "$D/m"
		python3 - "$D/h.sock" "$1" <<'PY'
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
fd = os.open("/dev/null", os.O_RDONLY)
s.sendmsg([sys.argv[2].encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
s.recv(1)
PY
		wait "$HANDLER_PID" && return 1
		HANDLER_PID=
		cat "$D/handler.out"
		grep -q "$2" "$D/handler.out"
	}
	region='"base_host_virt_addr": 4096, "size": 4096, "offset": 0'
	try_handoff '{"a": 1}' "not a JSON array"
	try_handoff '[]' "0 regions (1 to 16)"
	try_handoff "[{$region, \"page_size\": 2097152}]" "page size 2097152"
	try_handoff '[{"base_host_virt_addr": 4096, "size": 8192, "offset": 1044480}]' "the memory file has 1048576"
	try_handoff '[{"base_host_virt_addr": 4096, "size": -1, "offset": 0}]' "'size' is not a non-negative integer"
	try_handoff '[{"base_host_virt_addr": 4097, "size": 4096, "offset": 0}]' "must be whole pages"
	try_handoff '[{"base_host_virt_addr": 18446744073709547520, "size": 8192, "offset": 0}]' "too big integer"
	try_handoff "[{$region}, {$region}]" "regions 0 and 1 overlap"
	try_handoff "[{$region}]" "not a userfaultfd"
}
