#!/usr/bin/env bats
# virtio-rng with the freestanding test guest on this host's /dev/kvm: the guest reads the
# device by polling (tests/guest/rng.c) and sends it broken chains; ember must fill each
# request from getrandom() (at most 64 KiB), mark a broken queue DEVICE_NEEDS_RESET, keep
# running, serve again after the driver's reset, hold the rate limiter's pace, and count it
# all in the "entropy" metrics.

load lib/common

setup() {
	D=$(scratch_dir)
	EMBER_PID=
}

teardown() {
	api_stop
	rm -rf "$D"
}

# run_rng ENTROPY_JSON "WORDS": --no-api with the test guest, the given "entropy" value and
# metrics in $D/metrics; sets status and output as run does, and secs to ember's run time.
run_rng() {
	cat >"$D/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$TEST_GUEST", "boot_args": "console=ttyS0 $2" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 64 },
  "entropy": $1,
  "metrics": { "metrics_path": "$D/metrics" }
}
JSON
	local t0 t1
	t0=$(date +%s.%N)
	run timeout 30 "$EMBER" --no-api --config-file "$D/vm.json"
	t1=$(date +%s.%N)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	echo "$output"
	echo "--- ember ran $secs s; entropy metrics:"
	jq -c .entropy "$D/metrics" 2>/dev/null || true
}

# metric NAME: the entropy group's NAME summed over every metrics line.
metric() {
	jq -s "map(.entropy.$1 // 0) | add" "$D/metrics"
}

# guest_total KEY: from the guest's last line, "rng: totals served=N bytes=M".
guest_total() {
	sed -n "s/.*rng: totals.* $1=\([0-9]*\).*/\1/p" <<<"$output" | tr -d '\r' | tail -1
}

# distinct_at LABEL: the distinct= value of the line "rng: LABEL ...".
distinct_at() {
	sed -n "s/.*rng: $1 .*distinct=\([0-9]*\).*/\1/p" <<<"$output" | tr -d '\r' | tail -1
}

@test "entropy: reads are random, differ, fill every buffer of a chain, stop at 64 KiB; metrics count them" {
	run_rng '{}' rng-read
	[ "$status" -eq 0 ]
	[[ "$output" == *"rng: read used1=64 used2=64 distinct="*" differ=1 tail_intact=1"* ]]
	# 64 random bytes take about 57 of the 256 values; a constant or counter would not.
	[ "$(distinct_at read)" -ge 40 ]
	[[ "$output" == *"rng: split used=100 first_filled=1 second_filled=1"* ]]
	[[ "$output" == *"rng: big used=65536 distinct=256 tail_intact=1"* ]]
	[[ "$output" == *"rng: empty used=0"* ]]
	[[ "$output" == *"rng: indirect used=64 distinct="* ]]
	[ "$(distinct_at indirect)" -ge 40 ]
	[[ "$output" == *"guest requested a reset"* ]]
	[[ "$output" != *"DEVICE_NEEDS_RESET"* ]]
	# The metrics agree with what the guest received.
	[ "$(guest_total served)" -eq 6 ]
	[ "$(metric entropy_event_count)" -eq "$(guest_total served)" ]
	[ "$(metric entropy_bytes)" -eq "$(guest_total bytes)" ]
	[ "$(metric entropy_event_fails)" -eq 0 ]
	[ "$(metric host_rng_fails)" -eq 0 ]
	[ "$(metric activate_fails)" -eq 0 ]
}

@test "entropy hostile: readable buffers, an address outside memory, a loop, avail ahead, a long chain need a reset; after it a read works" {
	cases=(readable readable-first oob-addr loop avail-ahead long-chain)
	run_rng '{}' "$(printf 'rng-%s ' "${cases[@]}")"
	[ "$status" -eq 0 ]
	for c in "${cases[@]}"; do
		[[ "$output" == *"rng: $c needs_reset=1 used=0 isr_config=1"* ]] || { echo "case $c" >&2; false; }
		[[ "$output" == *"rng: $c reset status=0"* ]] || { echo "case $c" >&2; false; }
		[[ "$output" == *"rng: $c recovered used=64 distinct="* ]] || { echo "case $c" >&2; false; }
		[ "$(distinct_at "$c recovered")" -ge 40 ]
	done
	[ "$(grep -c 'virtio-rng entropy: .*device marked DEVICE_NEEDS_RESET' <<<"$output")" -eq ${#cases[@]} ]
	grep -q "device-readable buffer in an entropy request" <<<"$output"
	# ember lived on to the guest's own reset.
	[[ "$output" == *"guest requested a reset"* ]]
	[ "$(metric entropy_event_fails)" -eq ${#cases[@]} ]
	[ "$(metric entropy_event_count)" -eq ${#cases[@]} ]
	[ "$(metric entropy_bytes)" -eq $((64 * ${#cases[@]})) ]
}

# limited_run ENTROPY_JSON: 16 requests of 4 KiB through the API, InstanceStart, and the
# seconds from InstanceStart to ember's exit after the guest's reset, in secs.
limited_run() {
	api_start --metrics-path "$D/metrics"
	expect_api 204 PUT /boot-source \
		"{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"console=ttyS0 rng-rate\"}"
	expect_api 204 PUT /entropy "$1"
	local t0 t1
	t0=$(date +%s.%N)
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 600); do kill -0 "$EMBER_PID" 2>/dev/null || break; sleep 0.02; done
	t1=$(date +%s.%N)
	wait "$EMBER_PID"
	EMBER_PID=
	output=$(cat "$D/ember.out")
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	echo "$output"
	echo "--- $1: $secs s"
	[[ "$output" == *"rng: rate requests=16 full=16"* ]]
}

# secs_between LO HI
secs_between() {
	awk -v s="$secs" -v lo="$1" -v hi="$2" 'BEGIN { exit !(s >= lo && s <= hi) }'
}

@test "entropy rate limit: 4 KiB per 100 ms holds 16 requests of 4 KiB to 1.5 s after the full bucket's first" {
	limited_run '{}'
	fast=$secs
	limited_run '{"rate_limiter": {"bandwidth": {"size": 4096, "refill_time": 100}}}'
	echo "unlimited $fast s, limited $secs s"
	secs_between 1.4 4
	awk -v f="$fast" -v s="$secs" 'BEGIN { exit !(s - f >= 1.3) }'
	[ "$(metric entropy_rate_limiter_throttled)" -ge 15 ]
	[ "$(metric rate_limiter_event_count)" -ge 15 ]
	[ "$(metric entropy_bytes)" -eq $((2 * 16 * 4096)) ]
}

@test "entropy rate limit: 1 request per 100 ms (ops) does the same" {
	limited_run '{"rate_limiter": {"ops": {"size": 1, "refill_time": 100}}}'
	secs_between 1.4 4
	[ "$(metric entropy_rate_limiter_throttled)" -ge 15 ]
}

@test "entropy: a VM without the device boots; the guest finds none" {
	run_rng null rng-read
	[ "$status" -eq 0 ]
	[[ "$output" == *"rng: no virtio-rng device on the command line"* ]]
	[[ "$output" == *"guest requested a reset"* ]]
	[ "$(metric entropy_event_count)" -eq 0 ]
}
