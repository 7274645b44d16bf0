#!/usr/bin/env bats
# virtio-net configuration on this host, with real TAP devices in a network namespace of
# the test's own and the freestanding test guest: PUT and PATCH /network-interfaces/{id},
# the config file's "network-interfaces", and the errors that name the interface and the
# TAP (missing, down, in use, not a TAP).

load lib/common

setup_file() {
	[ "$(id -u)" = 0 ] && [ -c /dev/net/tun ] || skip "needs root and /dev/net/tun"
}

setup() {
	D=$(scratch_dir)
	EMBER_PID=
	NS=ember-net-$$-$BATS_TEST_NUMBER
	ip netns add "$NS"
	in_ns ip link set lo up
}

teardown() {
	api_stop
	[ -n "${PID2:-}" ] && { kill "$PID2" 2>/dev/null; wait "$PID2" 2>/dev/null; }
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$D"
}

in_ns() { ip netns exec "$NS" "$@"; }

tap() { # tap NAME [up]
	in_ns ip tuntap add dev "$1" mode tap
	[ "${2-}" = up ] && in_ns ip link set "$1" up
	return 0
}

# api_start in the namespace (the API socket is a path: it works from anywhere).
ns_api_start() {
	api_launch ip netns exec "$NS" "$EMBER" "$@"
}

@test "PUT /network-interfaces: a missing TAP, bad fields and a path mismatch are refused with the interface named" {
	ns_api_start
	expect_api 400 PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tap0"}' \
		"network interface 'eth0': host_dev_name: TAP device tap0 does not exist"
	tap tap0 up
	expect_api 400 PUT /network-interfaces/eth1 '{"iface_id": "eth0", "host_dev_name": "tap0"}' "does not match"
	expect_api 400 PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tap0", "vhost": true}' "unknown field 'vhost'"
	expect_api 400 PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "xx"}' "guest_mac"
	expect_api 204 PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02"}'
	# Firecracker: PATCH only on the running VM (test_api_patch_pre_boot).
	expect_api 400 PATCH /network-interfaces/eth0 '{"iface_id": "eth0", "tx_rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 100}}}' "not supported before starting the microVM"
	expect_api 200 GET /vm/config "" '"network-interfaces":[{"iface_id":"eth0","host_dev_name":"tap0","guest_mac":"06:00:ac:10:00:02","mtu":null,"rx_rate_limiter":null,"tx_rate_limiter":null}]'
}

@test "PUT /network-interfaces opens the TAP, as Firecracker does: a TUN device and a multi-queue TAP are refused there (fc_compat; vmm_config/net.rs builds the device at PUT)" {
	in_ns ip tuntap add dev tun0 mode tun
	in_ns ip tuntap add dev tapmq mode tap multi_queue
	ns_api_start
	expect_api 400 PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tun0"}' \
		"network interface eth0: cannot attach to TAP tun0: it is not a TAP device, or is a multi-queue one"
	expect_api 400 PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tapmq"}' \
		"network interface eth0: cannot attach to TAP tapmq: it is not a TAP device, or is a multi-queue one"
	# A TAP that is down is fine at PUT: it may come up before InstanceStart, which checks.
	tap tap0
	expect_api 204 PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tap0"}'
	expect_api 200 GET /vm/config "" '"network-interfaces":[{"iface_id":"eth0"'
}

# tap_tx_frames: frames ember has written to tap0 (the TAP's receive side).
tap_tx_frames() {
	in_ns cat /sys/class/net/tap0/statistics/rx_packets
}

# frames_in SECONDS: "FRAMES MS", the frames that reached tap0 while the shell slept that
# long, and the milliseconds from before the first count to after the second: a loaded host
# oversleeps, and the limits below are checked against the time that really passed.
frames_in() {
	local a b t0 t1
	t0=$(date +%s%N)
	a=$(tap_tx_frames)
	sleep "$1"
	b=$(tap_tx_frames)
	t1=$(date +%s%N)
	echo "$((b - a)) $(((t1 - t0) / 1000000))"
}

# rate_at_least "FRAMES MS" PER_S: FRAMES came at PER_S a second or faster.
rate_at_least() {
	set -- $1 "$2"
	[ $(($1 * 1000)) -ge $(($3 * $2)) ]
}

@test "InstanceStart: a TAP that is down fails naming it, then boots once it is up; PATCH limits on the running VM take effect" {
	tap tap0
	ns_api_start
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"net-tx-stream\"}"
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 204 PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tap0"}'
	expect_api 400 PUT /actions '{"action_type": "InstanceStart"}' "network interface eth0: TAP tap0 is down"
	in_ns ip link set tap0 up
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 100); do grep -q "net0: streaming" "$D/ember.out" && break; sleep 0.05; done
	grep -q "net0: streaming" "$D/ember.out"
	# Unlimited, the guest's frames flow as fast as it sends them: at least 4 times the limit
	# set next (some 100 a second on a quiet host, fewer in a loaded emulated one).
	free=$(frames_in 2)
	echo "without a limit: frames, ms: $free"
	rate_at_least "$free" 20
	# 5 frames per second (a bucket of 5 that refills each second): a PATCH on the running
	# VM slows the stream to that.
	expect_api 204 PATCH /network-interfaces/eth0 '{"iface_id": "eth0", "tx_rate_limiter": {"ops": {"size": 5, "refill_time": 1000}}}'
	sleep 1.5 # the bucket's first 5 and what the guest had in flight
	limited=$(frames_in 3)
	echo "with 5 frames/s: frames, ms: $limited"
	set -- $limited
	# At most 5 a second of the time that passed, and a bucket's worth the guest had saved up.
	[ $((($1 - 5) * 1000)) -le $((5 * $2)) ]
	[ "$1" -ge 5 ]
	# A limit of 0 removes it again.
	expect_api 204 PATCH /network-interfaces/eth0 '{"iface_id": "eth0", "tx_rate_limiter": {"ops": {"size": 0, "refill_time": 0}}}'
	sleep 1.5
	again=$(frames_in 2)
	echo "limit removed: frames, ms: $again"
	rate_at_least "$again" 20
	expect_api 204 PATCH /network-interfaces/eth0 '{"iface_id": "eth0", "rx_rate_limiter": {"ops": {"size": 100, "refill_time": 1000}}}'
	# Firecracker: a PATCH with only the id updates nothing and succeeds (rpc_interface.rs
	# update_net_rate_limiters with no limiters); a drive PATCH like it is refused.
	expect_api 204 PATCH /network-interfaces/eth0 '{"iface_id": "eth0"}'
	expect_api 204 PATCH /network-interfaces/eth0 '{"iface_id": "eth0", "rx_rate_limiter": null}'
	expect_api 400 PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tap0"}' "not supported after starting"
	kill -0 "$EMBER_PID"
}

@test "a TAP already in use by another ember is refused at PUT (Firecracker opens it there), naming it" {
	tap tap0 up
	ns_api_start
	boot_source
	expect_api 204 PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tap0"}'
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	local first=$SOCK
	SOCK="$D/api2.sock"
	ip netns exec "$NS" "$EMBER" --api-sock "$SOCK" >"$D/ember2.out" 2>&1 &
	PID2=$!
	for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.01; done
	boot_source
	expect_api 400 PUT /network-interfaces/net1 '{"iface_id": "net1", "host_dev_name": "tap0"}' \
		"network interface net1: cannot attach to TAP tap0: it is in use by another process"
	SOCK=$first
}

@test "--config-file with network-interfaces: boots with two TAPs; a missing one stops ember with its name" {
	tap tap0 up
	tap tap1 up
	cat >"$D/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$TEST_GUEST", "boot_args": "console=ttyS0" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 64 },
  "network-interfaces": [
    { "iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02", "mtu": 1500 },
    { "iface_id": "eth1", "host_dev_name": "tap1" }
  ]
}
JSON
	run in_ns timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from the guest"* ]]
	sed -i 's/"tap1"/"tap7"/' "$D/vm.json"
	run in_ns timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"network interface 'eth1'"*"TAP device tap7 does not exist"* ]]
}

@test "virtio-net offers checksum and TSO offloads, merged receive buffers, the MAC and (when set) the MTU" {
	tap tap0 up
	cat >"$D/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$TEST_GUEST", "boot_args": "net-config" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 64 },
  "network-interfaces": [ { "iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:07", "mtu": 1400 } ]
}
JSON
	if command -v strace >/dev/null; then
		run in_ns timeout 20 strace -ff -qq -e trace=ioctl -e signal=none -o "$D/strace" \
			"${UNDER_PTRACE[@]}" "$EMBER" --no-api --config-file "$D/vm.json"
	else
		run in_ns timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	fi
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"net0: config-send used=1 needs_reset=0"* ]]
	# The guest took every offload: the TAP gets checksum and TSO4/TSO6 (0x7) before it
	# hands the guest anything.
	if command -v strace >/dev/null; then
		grep -h TUNSETOFFLOAD "$D"/strace.*
		grep -qE '^ioctl\([0-9]+, TUNSETOFFLOAD, 0x7\)' "$D"/strace.*
	else
		echo "strace is not installed: the TUNSETOFFLOAD call is not checked"
	fi
	# Bits, high to low: VERSION_1 (32), EVENT_IDX (29), INDIRECT_DESC (28), MRG_RXBUF (15),
	# HOST_TSO6 (12), HOST_TSO4 (11), GUEST_TSO6 (8), GUEST_TSO4 (7), MAC (5), MTU (3),
	# GUEST_CSUM (1), CSUM (0). Nothing else: no UFO, no control queue, no multiqueue.
	[[ "$output" == *"net0: config features=32,29,28,15,12,11,8,7,5,3,1,0, mac0=6 mac5=7 mtu=1400"* ]]
	# Without "mtu" the device does not offer VIRTIO_NET_F_MTU.
	sed -i 's/, "mtu": 1400//' "$D/vm.json"
	run in_ns timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"net0: config features=32,29,28,15,12,11,8,7,5,1,0, mac0=6 mac5=7 mtu=0"* ]]
}

@test "hostile transmit chains: oversized, writable and short ones are dropped, bad addresses and long chains need a reset; ember keeps running and later frames reach the TAP" {
	tap tap0 up
	cat >"$D/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$TEST_GUEST", "boot_args": "net-tx-oversize net-tx-writable net-tx-short net-tx-oob net-tx-long" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 64 },
  "network-interfaces": [ { "iface_id": "eth0", "host_dev_name": "tap0" } ]
}
JSON
	local before after
	before=$(in_ns cat /sys/class/net/tap0/statistics/rx_packets)
	run in_ns timeout 20 "$EMBER" --no-api --config-file "$D/vm.json" --metrics-path "$D/metrics"
	echo "$output"
	[ "$status" -eq 0 ]
	# The net metrics group counts the three dropped chains and the five frames sent.
	jq -c .net "$D/metrics"
	[ "$(jq -s 'map(.net.tx_malformed_frames) | add' "$D/metrics")" -eq 3 ]
	[ "$(jq -s 'map(.net.tx_packets_count) | add' "$D/metrics")" -eq 5 ]
	for c in oversize writable short; do
		[[ "$output" == *"net0: tx-$c used=1 needs_reset=0"* ]]
		[[ "$output" == *"net0: tx-after-$c used=1 needs_reset=0"* ]]
	done
	[[ "$output" == *"net0: tx-oob used=0 needs_reset=1"* ]]
	[[ "$output" == *"net0: tx-long used=0 needs_reset=1"* ]]
	[ "$(grep -c 'net0: recovered used=1 needs_reset=0' <<<"$output")" -eq 2 ]
	[[ "$output" == *"dropped a transmit chain"* ]]
	[[ "$output" == *"buffer address outside guest memory"* ]]
	# The five valid frames (three after drops, two after resets) and nothing else.
	after=$(in_ns cat /sys/class/net/tap0/statistics/rx_packets)
	[ $((after - before)) -eq 5 ]
}
