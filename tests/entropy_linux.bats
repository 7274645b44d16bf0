#!/usr/bin/env bats
# virtio-rng under a real Linux guest where /dev/kvm can boot one (directly on a hardware
# KVM host, in the emulated KVM host here): the guest's hw_random core picks the device,
# /dev/hwrng gives data that is not constant and not biased, a bandwidth limiter holds the
# guest's read rate, and a guest without the device boots as before.

load lib/common
source "$EMBER_ROOT/tests/lib/host-kind.sh"

setup_file() {
	require_linux_host "$GUEST_VMLINUX" "$GUEST_INITRAMFS" || return 1
	export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-300}
}

setup() {
	D=$(scratch_dir)
}

teardown() {
	rm -rf "$D"
}

# run_linux ENTROPY_JSON "GUEST COMMAND": the initramfs guest runs the command (no double
# quotes: it travels inside JSON) with the given "entropy" value; metrics in $D/metrics.
run_linux() {
	# The kernel hands init at most 31 arguments; more would panic the guest.
	local words
	words=$(wc -w <<<"$2")
	[ "$words" -le 31 ] || { echo "guest command has $words words, at most 31 fit" >&2; return 1; }
	cat >"$D/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$GUEST_VMLINUX", "initrd_path": "$GUEST_INITRAMFS",
                   "boot_args": "$LINUX_ARGS -- $2" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 128 },
  "entropy": $1,
  "metrics": { "metrics_path": "$D/metrics" }
}
JSON
	run ember_on_linux_host timeout 240 "$EMBER" --no-api --config-file "$D/vm.json"
	show_output
	echo "--- entropy metrics:"
	jq -c .entropy "$D/metrics" 2>/dev/null || true
}

# metric NAME: the entropy group's NAME summed over every metrics line.
metric() {
	jq -s "map(.entropy.$1 // 0) | add" "$D/metrics"
}

@test "Linux reads /dev/hwrng from virtio-rng: two reads differ, and about half of the bits are ones" {
	local cmd='cat /sys/class/misc/hw_random/rng_current;'
	cmd+=' head -c 4096 /dev/hwrng >/tmp/a; head -c 4096 /dev/hwrng >/tmp/b;'
	cmd+=" cmp -s /tmp/a /tmp/b || echo $(unechoed RNG-DIFFER);"
	cmd+=" echo $(unechoed RNG-HEX); od -An -v -tx1 /tmp/a; echo $(unechoed RNG-END)"
	run_linux '{}' "$cmd"
	[ "$status" -eq 0 ]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	grep -qx 'virtio_rng.0' <<<"$(tr -d '\r' <<<"$output")"
	[[ "$output" == *"RNG-DIFFER"* ]]
	# The first read, as od printed it: 4096 bytes, then the share of one bits.
	tr -d '\r' <<<"$output" | sed -n '/^RNG-HEX$/,/^RNG-END$/p' | sed '1d;$d' | tr -d ' \n' >"$D/hex"
	[ "$(wc -c <"$D/hex")" -eq 8192 ]
	python3 - "$D/hex" <<'PY'
import sys
data = bytes.fromhex(open(sys.argv[1]).read())
ones = sum(bin(b).count("1") for b in data)
share = ones / (8 * len(data))
print(f"{len(data)} bytes, {len(set(data))} distinct values, share of one bits {share:.4f}")
assert len(set(data)) > 200, "too few distinct byte values"
assert 0.45 <= share <= 0.55, f"biased: {share}"
PY
	[ "$(metric entropy_bytes)" -ge 8192 ]
	[ "$(metric entropy_event_fails)" -eq 0 ]
}

@test "Linux: a bandwidth limit of 16 KiB/s holds the guest's /dev/hwrng reads within 10%" {
	# 4 KiB refilled every 250 ms. The bucket is full when the read starts: its 4 KiB come
	# at once, the 64 KiB after them take 4 s at the limit.
	local size=4096 refill=250 after=65536
	local rate=$((size * 1000 / refill))
	local cmd='read t0 x </proc/uptime;'
	cmd+=" head -c $((size + after)) /dev/hwrng >/dev/null;"
	cmd+=" read t1 x </proc/uptime; echo $(unechoed RNG-RATE) t0=\$t0 t1=\$t1"
	run_linux "{ \"rate_limiter\": { \"bandwidth\": { \"size\": $size, \"refill_time\": $refill } } }" "$cmd"
	[ "$status" -eq 0 ]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	line=$(grep -o 'RNG-RATE t0=[0-9.]* t1=[0-9.]*' <<<"$output")
	[ -n "$line" ]
	measured=$(awk -v l="$line" -v b=$after 'BEGIN { split(l, f, /[ =]/); printf "%d", b / (f[5] - f[3]) }')
	echo "measured $measured bytes/s, limit $rate bytes/s"
	[ "$measured" -ge $((rate * 90 / 100)) ]
	[ "$measured" -le $((rate * 110 / 100)) ]
	[ "$(metric entropy_rate_limiter_throttled)" -gt 0 ]
}

@test "Linux without the entropy device boots; hw_random has no source" {
	local cmd="cat /sys/class/misc/hw_random/rng_current; head -c 16 /dev/hwrng || echo $(unechoed NO-HWRNG)"
	run_linux null "$cmd"
	[ "$status" -eq 0 ]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	grep -qx 'none' <<<"$(tr -d '\r' <<<"$output")"
	[[ "$output" == *"NO-HWRNG"* ]]
	[[ "$output" != *"virtio_rng"* ]]
}
