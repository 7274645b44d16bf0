#!/usr/bin/env bats
# Snapshots of VMs with virtio-net and virtio-vsock, with the freestanding test guest on this
# host's /dev/kvm and real TAPs in a network namespace of the test's own: the guest's
# dev-count word (tests/guest/snap.c) sends a frame and makes an echo connection per count;
# after a load in a fresh ember on another TAP (network_overrides) and another uds_path
# (vsock_override) it goes on with both, and gets one TRANSPORT_RESET. Bad overrides and
# hostile device state are refused with their own messages, and ember stays usable.

load lib/common

SNAPFILE="$EMBER_ROOT/tests/helpers/snapfile.py"
CID=42
MAC=06:00:ac:10:00:02

setup_file() {
	[ "$(id -u)" = 0 ] && [ -c /dev/net/tun ] || skip "needs root and /dev/net/tun"
}

setup() {
	D=$(scratch_dir)
	EMBER_PID=
	LISTENERS=()
	NS=ember-snapdev-$$-$BATS_TEST_NUMBER
	ip netns add "$NS"
	in_ns ip link set lo up
	for t in tap0 tap1; do
		in_ns ip tuntap add dev $t mode tap
		in_ns ip link set $t up
	done
	# uds_path plus "_<port>" must fit in sun_path (108 bytes with the NUL).
	UDIR=$(mktemp -d /tmp/ember-snapdev.XXXXXX)
	cat >"$D/echo.py" <<'PY'
import socket, sys, threading

path, log = sys.argv[1:]
out = open(log, "a", buffering=1)


def echo(c):
    pending = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        pending += b
        while b"\n" in pending:
            ln, pending = pending.split(b"\n", 1)
            out.write("got %s\n" % ln.decode(errors="replace"))
            c.sendall(b"pong " + ln + b"\n")
    c.close()


s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
PY
}

teardown() {
	api_stop
	for p in "${LISTENERS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${LISTENERS[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$D" "$UDIR"
}

in_ns() { ip netns exec "$NS" "$@"; }

# echo_listener UDS: an echo listener at UDS_5000 that logs each line to UDS.log (python's
# start takes seconds in a loaded emulated host: 30 s at most).
echo_listener() {
	python3 "$D/echo.py" "${1}_5000" "$1.log" &
	LISTENERS+=($!)
	for _ in $(seq 600); do [ -S "${1}_5000" ] && return 0; sleep 0.05; done
	echo "listener ${1}_5000 never appeared" >&2
	return 1
}

# ns_api_start: ember in the namespace (the API socket is a path: it works from anywhere).
ns_api_start() {
	api_launch ip netns exec "$NS" "$EMBER"
}

# fresh_ember: ends the current ember (SIGKILL: nothing of it may matter) and starts another.
fresh_ember() {
	kill -KILL "$EMBER_PID"
	wait "$EMBER_PID" 2>/dev/null || true
	mv "$D/ember.out" "$D/ember.out.$EMBER_PID"
	rm -f "$D/api.sock"
	ns_api_start
}

tap_frames() { # tap_frames TAP: frames ember wrote to it (the TAP's receive side)
	in_ns cat "/sys/class/net/$1/statistics/rx_packets"
}

# echoes FILE: the counts N whose echo connection worked ("got="pong nN"").
echoes() {
	sed -n 's/.*vsock: n\([0-9]*\) connect=RESPONSE .* echo=RW got="pong n[0-9]*" close=RST.*/\1/p' "$1"
}

# last_count FILE: the guest's last "dev: count=N net=1" (0 if none).
last_count() {
	local n
	n=$(sed -n 's/.*dev: count=\([0-9]*\) net=1.*/\1/p' "$1" | tail -1)
	echo "${n:-0}"
}

# wait_echoes FILE N: until the guest made N working echo connections (30 s at most: a
# sanitized ember on a busy host is slow).
wait_echoes() {
	for _ in $(seq 600); do
		[ "$(echoes "$1" | wc -l)" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "fewer than $2 echo connections:" >&2
	tail -20 "$1" >&2
	return 1
}

# boot_devices [vsock]: the dev-count guest with eth0 on tap0 and, with "vsock", the vsock
# device at $UDIR/a.sock, started and seen to work.
boot_devices() {
	ns_api_start
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	# "dev-count" is only the guest's word: its output is "dev: count=N ...".
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"dev-count\"}"
	expect_api 204 PUT /network-interfaces/eth0 "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"$MAC\"}"
	if [ "${1-}" = vsock ]; then
		echo_listener "$UDIR/a.sock"
		expect_api 204 PUT /vsock "{\"guest_cid\": $CID, \"uds_path\": \"$UDIR/a.sock\"}"
	fi
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	if [ "${1-}" = vsock ]; then
		wait_echoes "$D/ember.out" 3
	else
		for _ in $(seq 600); do [ "$(last_count "$D/ember.out")" -ge 3 ] && break; sleep 0.05; done
		[ "$(last_count "$D/ember.out")" -ge 3 ]
	fi
}

# snapshot NAME: pauses the VM and writes $D/NAME.state and $D/NAME.mem.
snapshot() {
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 204 PUT /snapshot/create "{\"snapshot_path\": \"$D/$1.state\", \"mem_file_path\": \"$D/$1.mem\"}"
}

# load_body NAME EXTRA: a load request for $D/NAME.*, resumed, with EXTRA (", ..." JSON).
load_body() {
	echo "{\"snapshot_path\": \"$D/$1.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$D/$1.mem\"}, \"resume_vm\": true$2}"
}

OVERRIDES=', "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap1"}]'

@test "a guest counting through virtio-net and virtio-vsock goes on after a load on another TAP and uds_path, and gets one TRANSPORT_RESET" {
	boot_devices vsock
	snapshot s
	saved=$(last_count "$D/ember.out")
	saved_echo=$(echoes "$D/ember.out" | tail -1)
	fresh_ember
	tap0_before=$(tap_frames tap0)
	tap1_before=$(tap_frames tap1)
	echo_listener "$UDIR/b.sock"
	expect_api 204 PUT /snapshot/load "$(load_body s "$OVERRIDES, \"vsock_override\": {\"uds_path\": \"$UDIR/b.sock\"}")"
	wait_echoes "$D/ember.out" 5
	cat "$D/ember.out"
	# The count goes on from the snapshot: nothing restarted.
	first=$(grep -ao 'dev: count=[0-9]*' "$D/ember.out" | head -1 | tr -dc 0-9)
	echo "saved at count $saved (last echo n$saved_echo), first count after the load $first"
	[ "$first" -gt "$saved_echo" ]
	[ "$first" -le $((saved + 2)) ]
	# Frames go to the new TAP, none to the old one.
	sleep 0.3
	echo "tap0 $tap0_before -> $(tap_frames tap0), tap1 $tap1_before -> $(tap_frames tap1)"
	[ "$(tap_frames tap0)" -eq "$tap0_before" ]
	[ "$(tap_frames tap1)" -ge $((tap1_before + 3)) ]
	[ "$(last_count "$D/ember.out")" -gt "$saved" ]
	# Echo connections reach the listener at the new uds_path, with counts past the snapshot.
	n=$(echoes "$D/ember.out" | tail -1)
	[ "$n" -gt "$saved" ]
	grep -q "^got n$n\$" "$UDIR/b.sock.log"
	# TRANSPORT_RESET (id 0): once, after the load; never before it.
	[ "$(grep -c 'vsock: event id=0' "$D/ember.out")" -eq 1 ]
	[ "$(grep -c 'vsock: event' "$D/ember.out.$(ls "$D" | sed -n 's/^ember.out.//p')")" -eq 0 ]
	expect_api 200 GET /vm/config "" "\"host_dev_name\":\"tap1\""
	expect_api 200 GET /vm/config "" "\"uds_path\":\"$UDIR/b.sock\""
}

@test "a load without vsock_override binds the saved uds_path, which must be free" {
	boot_devices vsock
	snapshot s
	saved=$(last_count "$D/ember.out")
	fresh_ember
	# SIGKILL left the first ember's socket file behind.
	expect_api 400 PUT /snapshot/load "$(load_body s "$OVERRIDES")" \
		"vsock: uds_path $UDIR/a.sock: already exists (remove it first)"
	expect_api 200 GET / "" '"state":"Not started"'
	rm "$UDIR/a.sock"
	expect_api 204 PUT /snapshot/load "$(load_body s "$OVERRIDES")"
	wait_echoes "$D/ember.out" 3
	[ "$(last_count "$D/ember.out")" -gt "$saved" ]
}

# refused BODY_EXTRA WHY: the load of $D/s.* with BODY_EXTRA fails with WHY, nothing stays.
refused() {
	expect_api 400 PUT /snapshot/load "$(load_body s "$1")" "$2"
	expect_api 200 GET / "" '"state":"Not started"'
	expect_api 200 GET /vm/config "" '"network-interfaces":[]'
}

@test "bad overrides are refused with their own messages; the same ember loads after them" {
	boot_devices
	snapshot s
	saved=$(last_count "$D/ember.out")
	fresh_ember
	refused ', "network_overrides": [{"iface_id": "eth9", "host_dev_name": "tap1"}]' \
		"Load snapshot error: network_overrides[0]: Unknown Network Interface: the snapshot has no network interface 'eth9'"
	refused ', "network_overrides": {"iface_id": "eth0", "host_dev_name": "tap1"}' \
		"network_overrides: expected an array"
	refused ', "network_overrides": [{"iface_id": "eth0"}]' \
		"network_overrides[0]: missing field 'host_dev_name'"
	refused ', "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap1", "mac": "x"}]' \
		"network_overrides[0]: unknown field 'mac'"
	refused ', "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap7"}]' \
		"host_dev_name: TAP device tap7 does not exist"
	refused ", \"vsock_override\": {\"uds_path\": \"$UDIR/b.sock\"}" \
		"vsock_override: Unknown Vsock Device: the snapshot has no vsock device"
	refused ', "clock_realtime": 1' "clock_realtime"
	refused ', "vsock_overrides": {}' "unknown field 'vsock_overrides'"
	# A null override is none at all; then the good one.
	expect_api 204 PUT /snapshot/load "$(load_body s ', "vsock_override": null, "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap1"}]')"
	for _ in $(seq 600); do [ "$(last_count "$D/ember.out")" -ge $((saved + 3)) ] && break; sleep 0.05; done
	[ "$(last_count "$D/ember.out")" -ge $((saved + 3)) ]
	grep -q "vsock: no virtio-vsock device" "$D/ember.out.$(ls "$D" | sed -n 's/^ember.out.//p')"
}

@test "hostile device state in a sealed file is refused, naming the device; the good one loads after" {
	boot_devices vsock
	snapshot s
	fresh_ember
	cp "$D/s.state" "$D/orig.state"
	extra="$OVERRIDES, \"vsock_override\": {\"uds_path\": \"$UDIR/b.sock\"}"
	# virtio-net in slot 0: has_mac, the MAC, the MTU, then the limiters' buckets.
	"$SNAPFILE" "$D/s.state" own 0 1 0x07
	refused "$extra" "network interface eth0: the saved device's MAC or MTU is not its configuration's"
	cp "$D/orig.state" "$D/s.state"
	"$SNAPFILE" "$D/s.state" own 0 9 0x10
	refused "$extra" "network interface eth0: the saved rate limiter state does not fit its configuration"
	# virtio-vsock in slot 1: the guest CID, then the host port counter.
	cp "$D/orig.state" "$D/s.state"
	"$SNAPFILE" "$D/s.state" own 1 0 7
	refused "$extra" "vsock: the saved device has guest CID 7, its configuration 42"
	cp "$D/orig.state" "$D/s.state"
	"$SNAPFILE" "$D/s.state" own 1 11 0
	refused "$extra" "vsock: saved host port counter"
	# The failed loads left neither the socket nor the TAP taken.
	[ ! -e "$UDIR/b.sock" ]
	cp "$D/orig.state" "$D/s.state"
	echo_listener "$UDIR/b.sock"
	expect_api 204 PUT /snapshot/load "$(load_body s "$extra")"
	wait_echoes "$D/ember.out" 3
}

# clock_ms FILE first|last: the count-clock guest's kvmclock (ms) in its first or last line.
clock_ms() {
	local n
	n=$(sed -n 's/.*clock: count=[0-9]* ms=\([0-9]*\).*/\1/p' "$1" | { if [ "$2" = first ]; then head -1; else tail -1; fi; })
	echo "${n:-0}"
}

@test "clock_realtime advances the guest's kvmclock by the time the snapshot waited; without it the clock goes on from the snapshot" {
	skip_without_constant_tsc
	ns_api_start
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	# "count-clock" is only the guest's word: its output is "clock: count=N ms=M".
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"count-clock\"}"
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 400); do [ "$(clock_ms "$D/ember.out" last)" -gt 0 ] && break; sleep 0.05; done
	snapshot s
	saved=$(clock_ms "$D/ember.out" last)
	[ "$saved" -gt 0 ]
	sleep 5
	fresh_ember
	expect_api 400 PUT /snapshot/load "$(load_body s ', "clock_realtime": "yes"')" "clock_realtime"
	expect_api 204 PUT /snapshot/load "$(load_body s ', "clock_realtime": true')"
	for _ in $(seq 400); do [ "$(clock_ms "$D/ember.out" first)" -gt 0 ] && break; sleep 0.05; done
	with=$(clock_ms "$D/ember.out" first)
	grep -q "clock_realtime: kvmclock advanced by [0-9]* ms" "$D/ember.out"
	fresh_ember
	expect_api 204 PUT /snapshot/load "$(load_body s)"
	for _ in $(seq 400); do [ "$(clock_ms "$D/ember.out" first)" -gt 0 ] && break; sleep 0.05; done
	without=$(clock_ms "$D/ember.out" first)
	echo "kvmclock $saved ms at the snapshot; first after a load 5+ s later: $with ms with clock_realtime, $without ms without"
	[ $((with - saved)) -ge 5000 ]
	# The first line after the load comes within a loop's time (milliseconds; more on a
	# busy host) of the resume.
	[ $((without - saved)) -lt 2500 ]
	! grep -q "clock_realtime" "$D/ember.out"
}
