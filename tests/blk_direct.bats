#!/usr/bin/env bats
# virtio-blk with the freestanding test guest on this host's /dev/kvm: the guest drives the
# device by polling (tests/guest/virtio.c), including every hostile case, and ember must
# answer as promised and keep serving. Fast: each case is one short ember run.

load lib/common

setup() {
	D=$(scratch_dir)
	LOOPS=()
	# Sector 0 carries a marker the guest prints back; the rest is zeros.
	for img in data ro; do
		truncate -s 1M "$D/$img.img"
		printf 'EMBER-SECTOR-0-MARKER' | dd of="$D/$img.img" conv=notrunc status=none
	done
}

teardown() {
	local dev
	for dev in "${LOOPS[@]}"; do losetup -d "$dev" 2>/dev/null || true; done
	rm -rf "$D"
}

# blk_config FILE "WORDS" [DRIVE_JSON...]: the test guest with those words and drives.
blk_config() {
	local file=$1 words=$2
	shift 2
	write_drives_config "$file" "$TEST_GUEST" "console=ttyS0 $words" 64 "$@"
}

# drive ID PATH [extra JSON fields]
drive() {
	echo "{ \"drive_id\": \"$1\", \"path_on_host\": \"$2\", \"is_root_device\": false${3:+, $3} }"
}

run_guest() {
	run timeout 30 "$EMBER" --no-api --config-file "$D/vm.json" --level Debug
	echo "$output"
}

# The guest's request tests, and the image holding what the guest wrote (sector 2).
check_rw() {
	[ "$status" -eq 0 ]
	[[ "$output" == *"blk0: config capacity=2048 seg_max=254 blk_size=512 ro=0"* ]]
	[[ "$output" == *"blk0: get_id status=0 used_len=21 id=data_0"* ]]
	[[ "$output" == *"blk0: interrupt isr=1 after_ack=0"* ]]
	[[ "$output" == *"blk0: read status=0 used_len=513 sector0=EMBER-SECTOR-0-MARKER"* ]]
	[[ "$output" == *"blk0: write status=0 used_len=1"* ]]
	[[ "$output" == *"blk0: flush status=0"* ]]
	[[ "$output" == *"blk0: indirect-read status=0 used_len=1025 match=1"* ]]
	[[ "$output" == *"blk0: split-header status=0 match=1"* ]]
	[[ "$output" == *"blk0: beyond-capacity status=1"* ]]
	[[ "$output" == *"blk0: straddling-end status=1"* ]]
	[[ "$output" == *"blk0: unknown-type status=2"* ]]
	[[ "$output" == *"blk0: still-serving status=0"* ]]
	[ "$(dd if="$D/data.img" bs=512 skip=2 count=2 status=none | head -c 52)" = \
		"written-by-the-test-guest:written-by-the-test-guest:" ]
}

@test "blk Sync: GET_ID, read, write, flush, indirect, split header, bounds; the image holds the write" {
	blk_config "$D/vm.json" blk-rw "$(drive data_0 "$D/data.img")"
	run_guest
	check_rw
	[[ "$output" == *"drive data_0: $D/data.img, 2048 sectors, read-write, Sync engine, cache Unsafe"* ]]
}

@test "blk Async (io_uring), Writeback: the same requests and the same image" {
	blk_config "$D/vm.json" blk-rw \
		"$(drive data_0 "$D/data.img" '"io_engine": "Async", "cache_type": "Writeback"')"
	run_guest
	check_rw
	[[ "$output" == *"Async engine, cache Writeback"* ]]
}

# flushes DEV: flush requests the block device DEV (/dev/loopN) has completed so far.
flushes() {
	awk '{ print $16 }' "/sys/block/${1#/dev/}/stat"
}

# flush_check ENGINE CACHE: the test guest's blk-rw (one FLUSH) on a loop device over the
# image; prints the device's flush count before and after as "flushes=N".
flush_check() {
	local dev before after
	dev=$(losetup -f --show "$D/data.img")
	LOOPS+=("$dev")
	[ "$(cat "/sys/block/${dev#/dev/}/queue/write_cache")" = "write back" ]
	before=$(flushes "$dev")
	blk_config "$D/vm.json" blk-rw \
		"$(drive data_0 "$dev" "\"io_engine\": \"$1\", \"cache_type\": \"$2\"")"
	run_guest
	check_rw
	after=$(flushes "$dev")
	echo "$1 $2: flushes=$((after - before))"
	FLUSHES=$((after - before))
}

@test "blk Writeback: the guest's FLUSH reaches the image's device, with either engine; Unsafe sends none" {
	[ "$(id -u)" -eq 0 ] || skip "a loop device needs root"
	LOOPS=()
	flush_check Sync Writeback
	[ "$FLUSHES" -ge 1 ]
	flush_check Async Writeback
	[ "$FLUSHES" -ge 1 ]
	flush_check Sync Unsafe
	[ "$FLUSHES" -eq 0 ]
	flush_check Async Unsafe
	[ "$FLUSHES" -eq 0 ]
}

@test "blk: queue notifications go through ioeventfd, interrupts through irqfd" {
	command -v strace >/dev/null || skip "strace is not installed: it shows which calls raise the interrupt"
	blk_config "$D/vm.json" blk-irq "$(drive data_0 "$D/data.img")"
	# One file per thread (-ff): no call is split across lines by another thread's.
	run timeout 60 strace -ff -qq -e trace=eventfd2,ioctl,write -e signal=none -o "$D/strace" \
		"${UNDER_PTRACE[@]}" "$EMBER" --no-api --config-file "$D/vm.json" --level Debug
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"virtio-blk data_0: slot 0 at 0xc0001000, IRQ 5, queue notifications through ioeventfd"* ]]
	# Each completion reached the CPU as the vector of IOAPIC pin 5 (the 8259s masked),
	# not only InterruptStatus.
	[[ "$output" == *"blk0: irq vector=48 status1=0 irqs1=1 status2=0 irqs2=1"* ]]
	# And it was raised by writing an eventfd bound with KVM_IRQFD: the last one bound is
	# the device's (bound when the driver activated it), and it was written once per
	# completion at least. No other way of injecting an interrupt was used.
	run ! grep -E 'KVM_IRQ_LINE|KVM_SIGNAL_MSI|KVM_INTERRUPT' "$D"/strace.*
	irqfd=$(awk '/^eventfd2\(/ { last[FILENAME] = $NF }
		/^ioctl\([0-9]+, KVM_IRQFD,/ && $NF == 0 { fd = last[FILENAME] }
		END { print fd }' "$D"/strace.*)
	echo "the device's irqfd: ${irqfd:-none}"
	[ -n "$irqfd" ]
	# write(FD, "\1\0\0\0\0\0\0\0", 8) = 8: one edge on the line
	writes=$(cat "$D"/strace.* | grep -cE '^write\('"$irqfd"', "\\1(\\0){7}", 8\) += 8$' || true)
	echo "writes to it: $writes"
	[ "$writes" -ge 2 ]
}

@test "blk: devices are announced on the command line, root device first, with root= and ro/rw" {
	blk_config "$D/vm.json" "" "$(drive data_0 "$D/data.img")" \
		"{ \"drive_id\": \"root\", \"path_on_host\": \"$D/ro.img\", \"is_root_device\": true, \"is_read_only\": true }"
	run_guest
	[ "$status" -eq 0 ]
	[[ "$output" == *"command line: console=ttyS0 virtio_mmio.device=4K@0xc0001000:5 root=/dev/vda ro virtio_mmio.device=4K@0xc0002000:6"* ]]
	[[ "$output" == *"virtio-blk root: slot 0"* ]]
	[[ "$output" == *"virtio-blk data_0: slot 1"* ]]
	blk_config "$D/vm.json" "" \
		"{ \"drive_id\": \"root\", \"path_on_host\": \"$D/data.img\", \"is_root_device\": true, \"partuuid\": \"0eaa91a0-01\" }"
	run_guest
	[ "$status" -eq 0 ]
	[[ "$output" == *"virtio_mmio.device=4K@0xc0001000:5 root=PARTUUID=0eaa91a0-01 rw"* ]]
}

@test "blk: a write to a read-only drive fails with IOERR, reads still work, the image is unchanged" {
	before=$(sha256sum <"$D/ro.img")
	blk_config "$D/vm.json" blk-ro-write "$(drive data_0 "$D/data.img")" \
		"$(drive ro_1 "$D/ro.img" '"is_read_only": true')"
	run_guest
	[ "$status" -eq 0 ]
	[[ "$output" == *"blk1: ro-write ro=1 status=1"* ]]
	[[ "$output" == *"blk1: ro-read status=0 sector0=EMBER-SECTOR-0-M"* ]]
	[ "$(sha256sum <"$D/ro.img")" = "$before" ]
}

# hostile WORD NAME LOG: the guest breaks the queue, the device needs a reset (with a
# configuration interrupt), never uses the chain, logs why, and after the guest's reset
# serves a valid read; ember exits 0 when the guest resets the machine.
hostile() {
	blk_config "$D/vm.json" "$1" "$(drive data_0 "$D/data.img" '"io_engine": "Async"')"
	run_guest
	[ "$status" -eq 0 ]
	[[ "$output" == *"blk0: $2 needs_reset=1 used=0 isr_config=1"* ]]
	[[ "$output" == *"virtio-blk data_0: $3: device marked DEVICE_NEEDS_RESET"* ]]
	[[ "$output" == *"blk0: reset status=0"* ]]
	[[ "$output" == *"blk0: recovered status=0 sector0=EMBER-SECTOR-0-M"* ]]
	[[ "$output" == *"guest requested a reset"* ]]
}

@test "hostile: a descriptor loop" {
	hostile blk-loop loop "descriptor loop"
}

@test "hostile: a buffer outside guest memory" {
	hostile blk-oob-addr oob-addr "buffer address outside guest memory"
}

@test "hostile: a chain longer than the queue (indirect table)" {
	hostile blk-long-chain long-chain "chain longer than the queue size"
}

@test "hostile: the avail index far ahead of the device" {
	hostile blk-avail-ahead avail-ahead "avail index ran ahead by more than the queue size"
}

@test "hostile: status writes out of order are refused, FAILED is honoured, reset recovers" {
	blk_config "$D/vm.json" blk-bad-status "$(drive data_0 "$D/data.img")"
	run_guest
	[ "$status" -eq 0 ]
	# 0: DRIVER_OK first refused; 1: FEATURES_OK before DRIVER refused; 3: FEATURES_OK
	# without VIRTIO_F_VERSION_1 not accepted; 3: clearing DRIVER refused; 131: FAILED set;
	# 131: nothing but a reset after FAILED.
	[[ "$output" == *"blk0: bad-status driver_ok_first=0 features_ok_before_driver=1 features_ok_without_v1=3 clear_driver=3 failed=131 after_failed=131"* ]]
	[[ "$output" == *"refused: DRIVER_OK comes before FEATURES_OK"* ]]
	[[ "$output" == *"features 0x0 refused (VIRTIO_F_VERSION_1 missing)"* ]]
	[[ "$output" == *"blk0: recovered status=0 sector0=EMBER-SECTOR-0-M"* ]]
}

@test "hostile: every case in one run, then the full request test still passes" {
	blk_config "$D/vm.json" "blk-loop blk-oob-addr blk-long-chain blk-avail-ahead blk-bad-status blk-rw" \
		"$(drive data_0 "$D/data.img")"
	run_guest
	[ "$status" -eq 0 ]
	[ "$(grep -c 'blk0: recovered status=0' <<<"$output")" -eq 5 ]
	[[ "$output" == *"blk0: still-serving status=0"* ]]
}

@test "a guest that never resets a broken device leaves ember running until SIGTERM" {
	blk_config "$D/vm.json" "blk-loop halt" "$(drive data_0 "$D/data.img")"
	"$EMBER" --no-api --config-file "$D/vm.json" >"$D/out" 2>&1 &
	pid=$!
	for _ in $(seq 100); do grep -q "halting" "$D/out" && break; sleep 0.05; done
	cat "$D/out"
	grep -q "blk0: recovered status=0" "$D/out"
	kill -0 "$pid"
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	[ "$status" -eq 143 ]
}

# --- configuration errors: exit 1 with a message naming the drive and what is wrong ---

expect_drive_error() { # expect_drive_error PATTERN...
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 1 ]
	for p in "$@"; do [[ "$output" == *"$p"* ]]; done
}

@test "drive errors: missing file, directory, duplicate id, two roots, bad values, unknown field" {
	blk_config "$D/vm.json" "" "$(drive scratch "$D/nope.img")"
	expect_drive_error "drive 'scratch'" "$D/nope.img: No such file or directory"
	blk_config "$D/vm.json" "" "$(drive scratch "$D")"
	expect_drive_error "drive 'scratch'" "is not a file or block device"
	blk_config "$D/vm.json" "" "$(drive twin "$D/data.img")" "$(drive twin "$D/ro.img")"
	expect_drive_error "drive 'twin'" "used by two drives"
	blk_config "$D/vm.json" "" \
		"{ \"drive_id\": \"r1\", \"path_on_host\": \"$D/data.img\", \"is_root_device\": true }" \
		"{ \"drive_id\": \"r2\", \"path_on_host\": \"$D/ro.img\", \"is_root_device\": true }"
	expect_drive_error "drive 'r2'" "drive 'r1' is already the root device"
	blk_config "$D/vm.json" "" "$(drive d "$D/data.img" '"io_engine": "Uring"')"
	expect_drive_error "drive 'd'" "'io_engine' must be \"Sync\" or \"Async\""
	blk_config "$D/vm.json" "" "$(drive d "$D/data.img" '"cache_type": "None"')"
	expect_drive_error "drive 'd'" "'cache_type'"
	blk_config "$D/vm.json" "" "$(drive d "$D/data.img" '"rate_limiter": {"bandwidth": {"size": 10}}')"
	expect_drive_error "drive 'd'" "rate_limiter.bandwidth" "refill_time"
	blk_config "$D/vm.json" "" "$(drive d "$D/data.img" '"readonly": true')"
	expect_drive_error "drive 'd'" "unknown field 'readonly'"
	blk_config "$D/vm.json" "" "$(drive d "$D/data.img" '"is_read_only": "yes"')"
	expect_drive_error "drive 'd'" "'is_read_only' must be a boolean"
}

@test "drive errors: an image that is not writable for a read-write drive" {
	chmod 0444 "$D/ro.img"
	chmod 0755 "$D"
	blk_config "$D/vm.json" "" "$(drive d "$D/ro.img")"
	# File modes do not stop root: check as an unprivileged user then.
	as_user=()
	[ "$(id -u)" -ne 0 ] || as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	run timeout 20 "${as_user[@]}" "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"drive 'd': path_on_host $D/ro.img is not readable and writable"* ]]
}

@test "drive errors: more drives than virtio slots" {
	drives=()
	for i in $(seq 20); do drives+=("$(drive "d$i" "$D/data.img" '"is_read_only": true')"); done
	blk_config "$D/vm.json" "" "${drives[@]}"
	expect_drive_error "drive 'd20'" "too many drives (at most 19)"
	blk_config "$D/vm.json" blk-rw "${drives[@]:0:19}"
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json" --level Debug
	[ "$status" -eq 0 ]
	[[ "$output" == *"virtio_mmio.device=4K@0xc0013000:23"* ]]
}

@test "a drive's request slots are taken as its queue needs them: eight idle drives cost ember less than 1 MiB more than one" {
	# The release build, also in the sanitized pass: ASan's allocator writes all it hands out.
	local ember=$EMBER_ROOT/build/ember
	# rss_with N: ember's VmRSS (kB) with N read-only drives on the halting test guest.
	rss_with() {
		local i drives=()
		for ((i = 0; i < $1; i++)); do drives+=("$(drive "d$i" "$D/ro.img" '"is_read_only": true')"); done
		blk_config "$D/vm$1.json" "halt" "${drives[@]}"
		"$ember" --no-api --config-file "$D/vm$1.json" >/dev/null 2>&1 &
		local pid=$! rss=
		for ((i = 0; i < 100; i++)); do
			rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null)
			((${rss:-0} > 1000)) && break
			sleep 0.02
		done
		sleep 0.3 # the guest halted: ember is idle
		rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
		kill -TERM "$pid"
		wait "$pid" || true
		echo "$rss"
	}
	local one eight
	one=$(rss_with 1)
	eight=$(rss_with 8)
	echo "VmRSS: $one kB with one drive, $eight kB with eight"
	[ "$((eight - one))" -lt 1024 ]
}
