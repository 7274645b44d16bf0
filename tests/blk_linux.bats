#!/usr/bin/env bats
# virtio-blk under a real Linux guest, where /dev/kvm can boot one (directly on a hardware
# KVM host, in the emulated KVM host here): the root filesystem on /dev/vda (ext4 from
# `make rootfs`), a read-only second drive, both engines, data surviving a SIGKILL right
# after the guest's fsync, and the rate limiter holding a rate over 5 seconds.

load lib/common
source "$EMBER_ROOT/tests/lib/host-kind.sh"

ROOTFS="$EMBER_ROOT/build/guest/rootfs.ext4"

setup_file() {
	require_linux_host "$GUEST_VMLINUX" "$ROOTFS" || return 1
	command -v e2fsck debugfs >/dev/null || { echo "e2fsprogs missing: run 'make deps'" >&2; return 1; }
	export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-300}
}

setup() {
	D=$(scratch_dir)
	cp --sparse=always "$ROOTFS" "$D/root.ext4"
}

teardown() {
	rm -rf "$D"
}

# linux_config FILE "GUEST COMMAND" DRIVE_JSON...: root on the drives, no initrd. The
# command must not contain double quotes (it travels inside JSON and the command line).
linux_config() {
	local file=$1 cmd=$2
	shift 2
	write_drives_config "$file" "$GUEST_VMLINUX" "$LINUX_ARGS -- $cmd" 128 "$@"
}

root_drive() { # root_drive ENGINE
	echo "{ \"drive_id\": \"rootfs\", \"path_on_host\": \"$D/root.ext4\", \"is_root_device\": true, \"io_engine\": \"$1\", \"cache_type\": \"Writeback\" }"
}

run_linux() {
	run ember_on_linux_host timeout 240 "$EMBER" --no-api --config-file "$D/vm.json"
	show_output
}

# fsck_root: the ext4 root after the guest powered off or ember was killed. Its journal is
# replayed as the guest's next mount would (e2fsck exits 0, or 1 when it replayed one);
# then a full read-only check must find nothing to fix (exit 0). 4 (errors left) and 8
# (e2fsck could not run) fail either step.
fsck_root() {
	local rc=0
	e2fsck -y -E journal_only "$D/root.ext4" >"$D/fsck.log" 2>&1 || rc=$?
	if [ "$rc" -gt 1 ]; then
		echo "e2fsck -E journal_only exited $rc:" >&2
		cat "$D/fsck.log" >&2
		return 1
	fi
	rc=0
	e2fsck -fn "$D/root.ext4" >"$D/fsck.log" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "e2fsck -fn exited $rc:" >&2
		cat "$D/fsck.log" >&2
		return 1
	fi
}

# root_file PATH: PATH's content in the ext4 root, once fsck_root passed.
root_file() {
	fsck_root
	debugfs -R "cat $1" "$D/root.ext4" 2>/dev/null
}

# One boot per engine: root on vda read-write, a second drive read-only.
root_and_read_only_drive() {
	local engine=$1
	truncate -s 4M "$D/ro.img"
	printf 'EMBER-READ-ONLY-IMAGE' | dd of="$D/ro.img" conv=notrunc status=none
	local before
	before=$(sha256sum <"$D/ro.img")
	# At most 31 words after " -- ": the kernel's limit on init's arguments.
	local cmd='grep -o root=/dev/vda.rw /proc/cmdline; grep -o ^/dev/root./.ext4.rw /proc/mounts;'
	cmd+=' grep -H . /sys/block/vda/serial /sys/block/vdb/ro; head -c 21 /dev/vdb; echo;'
	cmd+=' echo file-written-in-the-guest >/root/from-guest.txt; sync;'
	cmd+=" dd if=/dev/zero of=/dev/vdb 2>/dev/null || echo $(unechoed RO-WRITE-FAILED)"
	linux_config "$D/vm.json" "$cmd" "$(root_drive "$engine")" \
		"{ \"drive_id\": \"ro_data\", \"path_on_host\": \"$D/ro.img\", \"is_root_device\": false, \"is_read_only\": true, \"io_engine\": \"$engine\" }"
	run_linux
	[ "$status" -eq 0 ]
	# Whole lines, as grep -o printed them (the kernel's own echo of its command line
	# would be one longer line).
	grep -qx 'root=/dev/vda rw' <<<"$(tr -d '\r' <<<"$output")"
	[[ "$output" == *"/dev/root / ext4 rw"* ]]
	[[ "$output" == *"/sys/block/vda/serial:rootfs"* ]] # GET_ID: the drive_id
	[[ "$output" == *"/sys/block/vdb/ro:1"* ]]           # VIRTIO_BLK_F_RO
	[[ "$output" == *"EMBER-READ-ONLY-IMAGE"* ]]
	[[ "$output" == *"RO-WRITE-FAILED"* ]]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	# Powered off: the file is in the image, the read-only image is untouched.
	root_file /root/from-guest.txt >"$D/from-guest.txt"
	[ "$(cat "$D/from-guest.txt")" = "file-written-in-the-guest" ]
	[ "$(sha256sum <"$D/ro.img")" = "$before" ]
}

@test "Linux, Sync engine: root on /dev/vda, a file written and synced is in the image; a read-only drive refuses writes" {
	root_and_read_only_drive Sync
}

@test "Linux, Async engine (io_uring): the same" {
	root_and_read_only_drive Async
}

# Runs in the Linux-capable host: serves the data drive from a loop device over its image
# (so that the flushes that reach it are counted), starts ember, SIGKILLs it the moment
# the guest prints PATTERN-SYNCED (after its fsync returned), and reports how ember ended
# and how many flushes the loop device completed meanwhile.
KILL_AT_MARKER='
cfg=$1 console=$2 ember=$3 image=$4
dev=$(losetup -f --show "$image") || exit 1
sed -i "s|\"$image\"|\"$dev\"|" "$cfg"
flushes() { awk "{ print \$16 }" "/sys/block/${dev#/dev/}/stat"; }
echo "WRITE-CACHE=$(cat "/sys/block/${dev#/dev/}/queue/write_cache")"
before=$(flushes)
"$ember" --no-api --config-file "$cfg" >"$console" 2>&1 &
pid=$!
for _ in $(seq 4000); do
	grep -q PATTERN-SYNCED "$console" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.03
done
if grep -q PATTERN-SYNCED "$console"; then
	kill -KILL "$pid" && echo KILLED-AT-MARKER
else
	kill -KILL "$pid" 2>/dev/null; echo NO-MARKER
fi
wait "$pid"
echo "EMBER-STATUS=$?"
echo "DATA-FLUSHES=$(($(flushes) - before))"
losetup -d "$dev"
cat "$console"
'

integrity() {
	local engine=$1 bytes=4194304
	truncate -s 8M "$D/data.img"
	# 4 MiB of a known pattern to the raw device and to a file on the ext4 root, both
	# fsynced; the marker only after both returned; then the guest idles.
	local cmd="yes ember-integrity-pattern-$engine | head -c $bytes > /tmp/p;"
	cmd+=' dd if=/tmp/p of=/dev/vdb bs=65536 conv=fsync 2>/dev/null &&'
	cmd+=' dd if=/tmp/p of=/root/pattern.bin bs=65536 conv=fsync 2>/dev/null &&'
	cmd+=" echo $(unechoed PATTERN-SYNCED); sleep 600"
	linux_config "$D/vm.json" "$cmd" "$(root_drive "$engine")" \
		"{ \"drive_id\": \"data\", \"path_on_host\": \"$D/data.img\", \"is_root_device\": false, \"io_engine\": \"$engine\", \"cache_type\": \"Writeback\" }"
	run ember_on_linux_host bash -c "$KILL_AT_MARKER" _ "$D/vm.json" "$D/console" "$EMBER" "$D/data.img"
	show_output
	[ "$status" -eq 0 ]
	[[ "$output" == *"KILLED-AT-MARKER"* ]]
	[[ "$output" == *"EMBER-STATUS=137"* ]]
	# SIGKILL leaves the host's page cache intact, so the data alone would be there with
	# cache_type Unsafe too: the guest's fsync must have reached the device as a flush.
	[ "$(value WRITE-CACHE)" = "write back" ]
	[ "$(value DATA-FLUSHES)" -ge 1 ]
	cmp <(head -c $bytes "$D/data.img") <(yes "ember-integrity-pattern-$engine" | head -c $bytes)
	# The file: once the journal is replayed (as the guest's next mount would), it is whole.
	fsck_root
	debugfs -R "dump /root/pattern.bin $D/pattern.bin" "$D/root.ext4" 2>/dev/null
	cmp "$D/pattern.bin" <(yes "ember-integrity-pattern-$engine" | head -c $bytes)
}

@test "data integrity, Async + Writeback: a pattern fsynced by the guest survives SIGKILL of ember" {
	integrity Async
}

@test "data integrity, Sync + Writeback: the same" {
	integrity Sync
}

@test "rate limit: 2 MiB/s on a drive holds within 15% over a 5-second read" {
	local rate=2097152 bytes=10485760
	truncate -s 16M "$D/data.img"
	# O_DIRECT: every byte comes from the device, none from the guest's page cache.
	local cmd='read t0 x < /proc/uptime; dd if=/dev/vdb of=/dev/null bs=65536 count=160 iflag=direct 2>/dev/null;'
	cmd+=' read t1 x < /proc/uptime; echo RL t0=$t0 t1=$t1'
	# A bucket of 1/10 s worth of bytes, refilled every 100 ms: 2 MiB/s, small bursts.
	linux_config "$D/vm.json" "$cmd" "$(root_drive Sync)" \
		"{ \"drive_id\": \"limited\", \"path_on_host\": \"$D/data.img\", \"is_root_device\": false, \"is_read_only\": true, \"rate_limiter\": { \"bandwidth\": { \"size\": $((rate / 10)), \"refill_time\": 100 } } }"
	run_linux
	[ "$status" -eq 0 ]
	line=$(grep -o 'RL t0=[0-9.]* t1=[0-9.]*' <<<"$output")
	[ -n "$line" ]
	measured=$(awk -v l="$line" -v b=$bytes 'BEGIN { split(l, f, /[ =]/); printf "%d", b / (f[5] - f[3]) }')
	echo "measured $measured bytes/s, limit $rate bytes/s"
	[ "$measured" -ge $((rate * 85 / 100)) ]
	[ "$measured" -le $((rate * 115 / 100)) ]
}
