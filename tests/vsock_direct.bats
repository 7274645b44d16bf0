#!/usr/bin/env bats
# virtio-vsock with the freestanding test guest on this host's /dev/kvm: the guest drives
# the device by polling (tests/guest/vsock.c) and sends it hostile packets and broken rings;
# ember must answer as promised (drop, RST, DEVICE_NEEDS_RESET), count what it dropped, keep
# running, and still carry a valid connection to a Unix listener at "<uds_path>_<port>".
# Host ports: 5000 echoes ("pong " + each line), 5001 accepts and never reads, 5003 holds
# every connection open.

load lib/common

CID=42

setup() {
	D=$(scratch_dir)
	EMBER_PID=
	LISTENERS=()
	# uds_path plus "_<port>" must fit in sun_path (108 bytes with the NUL).
	U="$D/v.sock"
	if [ $((${#U} + 6)) -gt 107 ]; then
		UDIR=$(mktemp -d /tmp/ember-vsock.XXXXXX)
		U="$UDIR/v.sock"
	fi
	cat >"$D/listen.py" <<'PY'
import resource, select, socket, sys, threading

mode, path, log = sys.argv[1:]
out = open(log, "a", buffering=1)
lock = threading.Lock()


def say(s):
    with lock:
        out.write(s + "\n")


def echo(c, n):
    total, pending = 0, b""
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            total += len(b)
            pending += b
            while b"\n" in pending:
                ln, pending = pending.split(b"\n", 1)
                say(f"conn {n} got {ln!r}")
                c.sendall(b"pong " + ln + b"\n")
    except OSError as e:
        say(f"conn {n} error {e}")
    say(f"conn {n} eof bytes={total}")
    c.close()


def sink(c, n):
    # Never reads: only waits for ember to close its end.
    p = select.poll()
    p.register(c, select.POLLRDHUP)
    p.poll()
    say(f"conn {n} closed by ember")
    c.close()


# "hold" keeps every connection open without a thread: over a thousand of them.
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, max(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))
held = []
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(2048)
n = 0
while True:
    c, _ = s.accept()
    n += 1
    if mode == "hold":
        held.append(c)
        say(f"holding {n}")
        continue
    say(f"conn {n} accepted")
    threading.Thread(target=echo if mode == "echo" else sink, args=(c, n), daemon=True).start()
PY
}

teardown() {
	api_stop
	for p in "${LISTENERS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${LISTENERS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$D" ${UDIR:+"$UDIR"}
}

# listen echo|sink|hold PORT: a listener at ${U}_PORT that logs to $D/listen-PORT.log.
listen() {
	python3 "$D/listen.py" "$1" "${U}_$2" "$D/listen-$2.log" &
	LISTENERS+=($!)
	for _ in $(seq 100); do [ -S "${U}_$2" ] && return 0; sleep 0.05; done
	echo "listener ${U}_$2 never appeared" >&2
	return 1
}

# run_vsock "WORDS": a VM configured through the API (metrics, the test guest with WORDS,
# the vsock device), started; waits for the guest's reset to end ember. Sets status and
# output as run does.
run_vsock() {
	api_start
	expect_api 204 PUT /metrics "{\"metrics_path\": \"$D/metrics\"}"
	expect_api 204 PUT /boot-source \
		"{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"console=ttyS0 $1\"}"
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 204 PUT /vsock "{\"guest_cid\": $CID, \"uds_path\": \"$U\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 600); do kill -0 "$EMBER_PID" 2>/dev/null || break; sleep 0.05; done
	status=0
	if kill -0 "$EMBER_PID" 2>/dev/null; then
		echo "ember still running after 30 s" >&2
		api_stop
		status=124
	else
		wait "$EMBER_PID" || status=$?
		EMBER_PID=
	fi
	output=$(cat "$D/ember.out")
	echo "$output"
	for f in "$D"/listen-*.log; do [ -e "$f" ] && echo "--- $f" && cat "$f"; done
	echo "--- vsock metrics"
	jq -c .vsock "$D/metrics" 2>/dev/null || true
	return 0
}

# metric NAME: the vsock group's NAME summed over every metrics line.
metric() {
	jq -s "map(.vsock.$1 // 0) | add" "$D/metrics"
}

# guest_total KEY: from the guest's last line, "vsock: totals rx=N rst=M".
guest_total() {
	sed -n "s/.*vsock: totals.* $1=\([0-9]*\).*/\1/p" <<<"$output" | tail -1
}

# wait_log PORT PATTERN: the listener's log gets a line matching PATTERN within 5 s.
wait_log() {
	for _ in $(seq 100); do grep -q "$2" "$D/listen-$1.log" 2>/dev/null && return 0; sleep 0.05; done
	echo "listener $1 never logged '$2'" >&2
	return 1
}

# Every packet from ember was well formed and expected.
no_surprises() {
	[[ "$output" != *"vsock: bad reply header"* ]]
	[[ "$output" != *"vsock: unexpected packet"* ]]
	[[ "$output" != *"vsock: bad receive used entry"* ]]
	[[ "$output" != *"no virtio-vsock device"* ]]
}

@test "vsock: the guest reads guest_cid from config space; a connection carries data both ways and closes" {
	listen echo 5000
	run_vsock vsock-echo
	[ "$status" -eq 0 ]
	[[ "$output" == *"vsock: config guest_cid=$CID"* ]]
	[[ "$output" == *'vsock: echo connect=RESPONSE buf_alloc=262144 echo=RW got="pong echo" close=RST'* ]]
	no_surprises
	wait_log 5000 "conn 1 eof bytes=5"
	grep -q "conn 1 got b'echo'" "$D/listen-5000.log"
	[ "$(metric conns_added)" -eq 1 ]
	[ "$(metric conns_removed)" -eq 1 ]
	[ "$(metric tx_dropped)" -eq 0 ]
	[[ "$output" == *"guest requested a reset"* ]]
}

@test "vsock hostile: malformed packets are dropped and counted, or answered with RST; ember keeps serving" {
	listen echo 5000
	run_vsock vsock-hostile
	[ "$status" -eq 0 ]
	# Dropped: the chain comes back used, nothing answers (the probe after it is the
	# first thing the guest hears).
	dropped=(writable-buffer header-writable short-chain short-split len-beyond-chain
		len-overflow len-over-max src-cid src-cid-high dst-cid-self dst-cid-high dst-cid-any)
	for c in "${dropped[@]}"; do
		[[ "$output" == *"vsock: $c reply=none used=1"* ]] || { echo "case $c" >&2; false; }
	done
	# Answered with RST: a bad type or op, the ops that need a connection, a refused
	# REQUEST; a valid split header and a payload of exactly 64 KiB are taken.
	for c in split-header len-max bad-type type-zero op-zero op-8 op-ffff rw-no-conn \
		shutdown-no-conn credit-update-no-conn credit-request-no-conn response-no-conn refused; do
		[[ "$output" == *"vsock: $c reply=RST used=1"* ]] || { echo "case $c" >&2; false; }
	done
	# An RST is never answered.
	[[ "$output" == *"vsock: bad-type-rst reply=none used=1"* ]]
	[[ "$output" == *"vsock: rst-no-conn reply=none used=1"* ]]
	# On a live connection: the malformed RWs are dropped and the connection lives on; the
	# host gets exactly hdr.len bytes of the valid one, and ember's fwd_cnt agrees.
	[[ "$output" == *"vsock: live-connect reply=RESPONSE buf_alloc=262144 fwd_cnt=0"* ]]
	for c in src-cid len-over-max writable len-beyond-chain; do
		[[ "$output" == *"vsock: live-$c reply=none used=1"* ]] || { echo "case live-$c" >&2; false; }
	done
	[[ "$output" == *'vsock: live-echo reply=RW got="pong live"'* ]]
	[[ "$output" == *"vsock: live-credit reply=CREDIT_UPDATE fwd_cnt=5 buf_alloc=262144"* ]]
	[[ "$output" == *"vsock: live-shutdown reply=RST"* ]]
	[[ "$output" == *'vsock: after-hostile connect=RESPONSE buf_alloc=262144 echo=RW got="pong after-hostile" close=RST'* ]]
	no_surprises
	# The SEQPACKET REQUEST to the echo port never reached it: two connections only.
	wait_log 5000 "conn 2 eof"
	[ "$(grep -c accepted "$D/listen-5000.log")" -eq 2 ]
	grep -q "conn 1 got b'live'" "$D/listen-5000.log"
	grep -q "conn 1 eof bytes=5" "$D/listen-5000.log"
	# The metrics agree with what the guest saw.
	[ "$(metric tx_dropped)" -eq $((${#dropped[@]} + 4)) ]
	[ "$(metric rst_sent)" -eq "$(guest_total rst)" ]
	[ "$(metric rx_packets_count)" -eq "$(guest_total rx)" ]
	[ "$(metric conns_refused)" -eq 1 ]
	[ "$(metric conns_added)" -eq 2 ]
	[ "$(metric credit_exceeded)" -eq 0 ]
	[[ "$output" == *"virtio-vsock"* ]]
	[[ "$output" != *"DEVICE_NEEDS_RESET"* ]]
}

@test "vsock hostile: a guest beyond its credit gets RST, ember closes the host socket, a new connection works" {
	listen echo 5000
	listen sink 5001
	run_vsock vsock-credit
	[ "$status" -eq 0 ]
	[[ "$output" == *"vsock: credit-connect reply=RESPONSE buf_alloc=262144"* ]]
	# The RST came only once the unread data went past the 256 KiB credit.
	[[ "$output" =~ "vsock: credit-exceeded reply=RST sent_kib="[0-9]+" fwd_cnt="[1-9][0-9]*" answered=1 beyond_credit=1 first_beyond=1 more=1" ]]
	[[ "$output" == *"vsock: credit-after-reset reply=RST"* ]]
	[[ "$output" == *'vsock: after-credit connect=RESPONSE buf_alloc=262144 echo=RW got="pong after-credit" close=RST'* ]]
	no_surprises
	wait_log 5001 "conn 1 closed by ember"
	[ "$(grep -c accepted "$D/listen-5001.log")" -eq 1 ]
	[ "$(metric credit_exceeded)" -eq 1 ]
	[ "$(metric tx_dropped)" -eq 0 ]
	[ "$(metric rst_sent)" -eq "$(guest_total rst)" ]
}

@test "vsock hostile: broken rings need a reset (avail ahead, address outside memory, loop, bad receive buffer); after it a connection works" {
	listen echo 5000
	run_vsock "vsock-avail-ahead vsock-oob-addr vsock-loop vsock-rx-oob"
	[ "$status" -eq 0 ]
	for c in avail-ahead oob-addr loop rx-oob; do
		[[ "$output" == *"vsock: $c before=RESPONSE needs_reset=1 used=0 isr_config=1"* ]] ||
			{ echo "case $c" >&2; false; }
		[[ "$output" == *"vsock: $c reset status=0"* ]]
		[[ "$output" == *"vsock: $c connect=RESPONSE buf_alloc=262144 echo=RW got=\"pong $c\" close=RST"* ]]
	done
	[ "$(grep -c 'virtio-vsock.*device marked DEVICE_NEEDS_RESET' <<<"$output")" -eq 4 ]
	no_surprises
}

@test "vsock: a device reset ends the connections from before it: RST to the guest, EOF to the host, TRANSPORT_RESET on the event queue" {
	listen echo 5000
	run_vsock vsock-avail-ahead
	[ "$status" -eq 0 ]
	[[ "$output" == *"vsock: avail-ahead old-conn reply=RST"* ]]
	[[ "$output" == *"vsock: avail-ahead event transport_reset=1"* ]]
	# conn 1 was opened before the reset and never closed by the guest.
	wait_log 5000 "conn 1 eof bytes=0"
	[ "$(metric conns_added)" -eq 2 ]
	[ "$(metric conns_removed)" -eq 2 ]
}

@test "vsock: --config-file with a vsock object; the guest connects" {
	listen echo 5000
	cat >"$D/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$TEST_GUEST", "boot_args": "console=ttyS0 vsock-echo" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 64 },
  "vsock": { "guest_cid": $CID, "uds_path": "$U" }
}
JSON
	run timeout 30 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"vsock: config guest_cid=$CID"* ]]
	[[ "$output" == *'vsock: echo connect=RESPONSE buf_alloc=262144 echo=RW got="pong echo" close=RST'* ]]
	no_surprises
}

@test "vsock: at most 1024 connections at once; the next is refused with RST, and closing one makes room" {
	listen hold 5003
	run_vsock vsock-many
	[ "$status" -eq 0 ]
	[[ "$output" == *"vsock: many responses=1024 refused_at=1025 refused_op=RST"* ]]
	[[ "$output" == *"vsock: many-after-close connect=RESPONSE next=RST"* ]]
	[[ "$output" == *"connect to host port 5003 refused: 1024 connections open"* ]]
	no_surprises
	wait_log 5003 "holding 1025"
	[ "$(grep -c holding "$D/listen-5003.log")" -eq 1025 ]
}

# connect_and_wait LINE: connects to uds_path, sends LINE (unless empty), and prints what
# came back and how long until ember closed the connection: "reply=... secs=...".
connect_and_wait() {
	python3 - "$U" "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
t0 = time.monotonic()
if sys.argv[2]:
    s.sendall(sys.argv[2].encode() + b"\n")
s.settimeout(10)
got = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
except socket.timeout:
    got += b"<still open after 10 s>"
print(f"reply={got!r} secs={time.monotonic() - t0:.2f}")
PY
}

# secs_between LO HI: the "secs=" of $output lies between LO and HI.
secs_between() {
	awk -v s="$(sed -n 's/.*secs=\([0-9.]*\).*/\1/p' <<<"$output")" -v lo="$1" -v hi="$2" \
		'BEGIN { exit !(s != "" && s >= lo && s <= hi) }'
}

@test "vsock: a host connect the guest never answers is closed after 2 s, as is one that never sends CONNECT" {
	api_start
	expect_api 204 PUT /boot-source \
		"{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"console=ttyS0 vsock-deaf halt\"}"
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 204 PUT /vsock "{\"guest_cid\": $CID, \"uds_path\": \"$U\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 100); do grep -q halting "$D/ember.out" && break; sleep 0.05; done
	grep -q "vsock: deaf: ready" "$D/ember.out"
	# The guest has receive buffers, takes the REQUEST, and never answers.
	run connect_and_wait "CONNECT 1234"
	echo "$output"
	[[ "$output" == "reply=b'' secs="* ]]
	secs_between 1.8 3.5
	grep -q "host connection to guest port 1234: no answer in 2000 ms$" "$D/ember.out"
	# Nothing sent at all: the same 2 s for the CONNECT line.
	run connect_and_wait ""
	echo "$output"
	[[ "$output" == "reply=b'' secs="* ]]
	secs_between 1.8 3.5
	kill -0 "$EMBER_PID"
}

@test "vsock: uds_path is removed when ember exits, after the guest's reset and after SIGTERM" {
	listen echo 5000
	run_vsock vsock-echo
	[ "$status" -eq 0 ]
	[[ "$output" == *"guest requested a reset"* ]]
	[ ! -e "$U" ]
	# The listener's socket is the host's own: ember leaves it.
	[ -S "${U}_5000" ]
	api_start
	expect_api 204 PUT /boot-source \
		"{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"console=ttyS0 halt\"}"
	expect_api 204 PUT /vsock "{\"guest_cid\": $CID, \"uds_path\": \"$U\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 100); do [ -S "$U" ] && break; sleep 0.05; done
	[ -S "$U" ]
	kill -TERM "$EMBER_PID"
	status=0
	wait "$EMBER_PID" || status=$?
	EMBER_PID=
	[ "$status" -eq 143 ]
	[ ! -e "$U" ]
}
