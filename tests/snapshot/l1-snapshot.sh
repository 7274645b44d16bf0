#!/bin/bash
# Runs inside the emulated KVM host (or directly on a hardware KVM host), as root: boots
# ember with a Linux guest on a TAP, a vsock device and a data drive; the guest starts a
# counter that prints the count and the time every second and keeps a file in a tmpfs.
# Then: pause, snapshot (state and memory in this host's /tmp), SIGKILL; the TAP goes
# (another with its address and MAC takes over) and, 4 s later, a new ember loads the
# snapshot with network_overrides, vsock_override and clock_realtime, and a host
# connection to the guest runs its checks (tmpfs, ping, disk, a guest connect to the
# host), and the guest's clock is compared with the host's. Then CLONES more embers load the same snapshot at once, each on its own TAP and
# uds_path, without clock_realtime: each must count on and answer over vsock, and their
# memory is measured (/proc/PID/smaps_rollup). Usage:
#   l1-snapshot.sh DIR [CLONES]
# Prints the consoles and lines starting HOST- for tests/snapshot_linux.bats.
set -u
D=$1 CLONES=${2:-8}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EMBER=${EMBER:-$ROOT/build/ember}
VS=$ROOT/build/ember-vsock
ARGS="console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet"
GAP=6 # seconds between the snapshot and the load

# The test's own network namespace: nothing it creates outlives it or meets the host's.
if [ -z "${EMBER_SNAP_NS_INNER:-}" ]; then
	export EMBER_SNAP_NS_INNER=1
	exec unshare --net -- "$0" "$@"
fi
ip link set lo up

# Sockets, the snapshot and the consoles on this host's own /tmp: the repository's 9p share
# has no sockets, and clones should share the memory file's pages in a real page cache.
T=$(mktemp -d /tmp/ember-snap.XXXXXX)
PIDS=() # embers and helpers to stop at the end
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

# script_drive
. "$ROOT/tests/lib/l1-guest.sh"

api() { # api SOCK METHOD PATH [BODY]: the reply's body and "HTTP<status>" on one line
	if [ $# -ge 4 ]; then
		curl -s --max-time 60 --unix-socket "$1" -X "$2" -H 'Content-Type: application/json' \
			-d "$4" -w ' HTTP%{http_code}' "http://localhost$3"
	else
		curl -s --max-time 60 --unix-socket "$1" -X "$2" -w ' HTTP%{http_code}' "http://localhost$3"
	fi
	echo
}

start_ember() { # start_ember NAME [ember args]: API socket $T/NAME.api, console $T/NAME.console
	local name=$1
	shift
	"$EMBER" --api-sock "$T/$name.api" "$@" >"$T/$name.console" 2>&1 &
	PIDS+=($!)
	LAST_PID=$!
	for _ in $(seq 200); do [ -S "$T/$name.api" ] && return 0; sleep 0.05; done
	echo "HOST-NO-API-SOCKET $name"
	return 1
}

wait_console() { # wait_console NAME PATTERN SECONDS: 0 once NAME's console has PATTERN
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -aq -- "$2" "$T/$1.console" && return 0
		sleep 0.1
	done
	echo "HOST-NEVER-SAW $1: $2"
	return 1
}

mktap() { # mktap NAME [ADDR MAC]
	ip tuntap add dev "$1" mode tap || return 1
	[ -n "${2-}" ] && ip addr add "$2/24" dev "$1"
	[ -n "${3-}" ] && ip link set "$1" address "$3"
	ip link set "$1" up
}

counts() { # counts NAME: its console's "count time" pairs
	sed -n 's/^GUEST-COUNT=\([0-9]*\) \([0-9]*\).*/\1 \2/p' "$T/$1.console"
}

# clock_offset SOCK: the guest's wall-clock time (its port 5003) less the host's, in
# seconds, against the middle of the host's request.
clock_offset() {
	local h0 g h1
	h0=$(date +%s%N)
	g=$("$VS" uds-connect "$1" 5003 </dev/null 2>/dev/null) ||
		g=$("$VS" uds-connect "$1" 5003 </dev/null 2>/dev/null)
	h1=$(date +%s%N)
	[ -n "$g" ] && echo $((g - (h0 + h1) / 2000000000))
}

load_body() { # load_body EXTRA: the load request, resumed, with EXTRA (", ..." JSON)
	echo "{\"snapshot_path\": \"$T/snap.state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$T/snap.mem\"}, \"resume_vm\": true$1}"
}

# --- the guest ---
script_drive <<'SH'
ip link set eth0 up && ip addr add 172.16.0.2/24 dev eth0
ping -c 1 -W 10 172.16.0.1 >/dev/null && echo GUEST-PING-BEFORE-OK
mkdir -p /mnt/t && mount -t tmpfs tmpfs /mnt/t
echo "tmpfs-$(cat /proc/sys/kernel/random/uuid)" >/mnt/t/state
echo "GUEST-TMPFS-BEFORE=$(cat /mnt/t/state)"
printf before-snapshot | dd of=/dev/vdb conv=notrunc 2>/dev/null && sync
# What a host connection to port 5000 runs after the load, the connection its stdin and
# stdout.
cat >/after.sh <<'AFTER'
echo "AFTER-TMPFS=$(cat /mnt/t/state)"
ping -c 2 -W 5 172.16.0.1 >/dev/null && echo AFTER-PING-OK
echo "AFTER-DISK-READ=$(dd if=/dev/vdb bs=15 count=1 2>/dev/null)"
printf after-load | dd of=/dev/vdb bs=512 seek=1 conv=notrunc 2>/dev/null && sync
echo 3 >/proc/sys/vm/drop_caches
echo "AFTER-DISK-WRITE=$(dd if=/dev/vdb bs=512 skip=1 count=1 2>/dev/null | tr -d '\000')"
echo "AFTER-G2H=$(echo guest-to-host | ember-vsock connect 2 5001)"
AFTER
ember-vsock listen 5000 sh /after.sh 2>/dev/null &
ember-vsock listen 5002 2>/dev/null &
# The guest's wall-clock time, for a host connection to 5003.
ember-vsock listen 5003 date +%s 2>/dev/null &
# The counter, in a process of its own: the count lives in its memory.
sh -c 'i=0; while :; do i=$((i + 1)); echo "GUEST-COUNT=$i $(date +%s)"; sleep 1; done' &
echo GUEST-READY
wait
SH
truncate -s 1M "$D/data.img"
cat >"$D/vm.json" <<JSON
{
  "boot-source": { "kernel_image_path": "$ROOT/build/guest/vmlinux",
                   "initrd_path": "$ROOT/build/guest/initramfs.cpio.gz",
                   "boot_args": "$ARGS -- sh /dev/vda" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 128 },
  "drives": [
    { "drive_id": "script", "path_on_host": "$D/script.sh", "is_root_device": false, "is_read_only": true },
    { "drive_id": "data", "path_on_host": "$D/data.img", "is_root_device": false, "is_read_only": false } ],
  "network-interfaces": [ { "iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02" } ],
  "vsock": { "guest_cid": 3, "uds_path": "$T/a.sock" }
}
JSON

# --- boot, snapshot ---
mktap tap0 172.16.0.1 || exit 1
# (This namespace's devices are not in /sys/class/net, which shows the mounter's.)
MAC=$(ip -o link show tap0 | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p')
echo "HOST-TAP0-MAC=$MAC"
start_ember first --config-file "$D/vm.json" || exit 1
FIRST=$LAST_PID
wait_console first GUEST-READY 240 || { cat "$T/first.console"; exit 1; }
wait_console first "GUEST-COUNT=3 " 30
echo "HOST-H2G-BEFORE=$(echo before | "$VS" uds-connect "$T/a.sock" 5002 2>&1)"
echo "HOST-CLOCK-OFFSET-BEFORE=$(clock_offset "$T/a.sock")"
echo "HOST-PAUSE=$(api "$T/first.api" PATCH /vm '{"state": "Paused"}')"
echo "HOST-CREATE=$(api "$T/first.api" PUT /snapshot/create "{\"snapshot_path\": \"$T/snap.state\", \"mem_file_path\": \"$T/snap.mem\"}")"
echo "HOST-SNAPSHOT-AT=$(date +%s)"
kill -KILL "$FIRST"
wait "$FIRST" 2>/dev/null
echo "HOST-MEM-FILE-KB=$(du -k "$T/snap.mem" | cut -f1) of $(($(stat -c %s "$T/snap.mem") >> 10))"
read -r c t < <(counts first | tail -1)
echo "HOST-LAST-COUNT-BEFORE=$c"
echo "HOST-LAST-TIME-BEFORE=$t"

# --- load on another TAP and uds_path ---
ip link del tap0
mktap tap1 172.16.0.1 "$MAC" || exit 1
sleep "$GAP"
"$VS" uds-listen "$T/b.sock_5001" 2>/dev/null &
PIDS+=($!)
start_ember second || exit 1
SECOND=$LAST_PID
t0=$(date +%s%N)
echo "HOST-LOAD=$(api "$T/second.api" PUT /snapshot/load "$(load_body ", \"network_overrides\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap1\"}], \"vsock_override\": {\"uds_path\": \"$T/b.sock\"}, \"clock_realtime\": true")")"
echo "HOST-LOAD-MS=$((($(date +%s%N) - t0) / 1000000))"
wait_console second GUEST-COUNT= 60
sleep 2
"$VS" uds-connect "$T/b.sock" 5000 </dev/null 2>&1 | sed 's/^/HOST-/'
echo "HOST-H2G-AFTER=$(echo after | "$VS" uds-connect "$T/b.sock" 5002 2>&1)"
read -r c t < <(counts second | head -1)
echo "HOST-FIRST-COUNT-AFTER=$c"
echo "HOST-FIRST-TIME-AFTER=$t"
echo "HOST-CLOCK-OFFSET-AFTER=$(clock_offset "$T/b.sock")"
echo "HOST-SECOND-CONFIG=$(api "$T/second.api" GET /vm/config)"

# --- clones ---
for ((i = 1; i <= CLONES; i++)); do
	mktap "tapc$i" || exit 1
	start_ember "clone$i" || exit 1
	CLONE_PIDS[i]=$LAST_PID
done
for ((i = 1; i <= CLONES; i++)); do
	api "$T/clone$i.api" PUT /snapshot/load "$(load_body ", \"network_overrides\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tapc$i\"}], \"vsock_override\": {\"uds_path\": \"$T/c$i.sock\"}")" >"$T/clone$i.load" &
done
wait_loads=0
for ((i = 1; i <= CLONES; i++)); do
	for _ in $(seq 600); do [ -s "$T/clone$i.load" ] && break; sleep 0.1; done
	grep -q HTTP204 "$T/clone$i.load" && wait_loads=$((wait_loads + 1)) || echo "HOST-CLONE$i-LOAD=$(cat "$T/clone$i.load")"
done
echo "HOST-CLONES-LOADED=$wait_loads"
running=0 answered=0 rss=0 pss=0 FAILED_CLONES=
for ((i = 1; i <= CLONES; i++)); do
	wait_console "clone$i" GUEST-COUNT= 120 >/dev/null && running=$((running + 1))
	# Eight emulated guests at once may take longer than ember's 2 s for a connect's
	# answer ("no answer in 2000 ms" in that clone's log): a refused one is tried again.
	for try in 1 2 3 4 5; do
		r=$(echo "clone$i" | "$VS" uds-connect "$T/c$i.sock" 5002 2>&1)
		[ "$r" = "clone$i" ] && break
		echo "HOST-CLONE$i-VSOCK-TRY$try=$r"
		[ "$try" = 1 ] && FAILED_CLONES+=" clone$i"
		sleep 1
	done
	[ "$r" = "clone$i" ] && answered=$((answered + 1))
done
sleep 2
for ((i = 1; i <= CLONES; i++)); do
	read -r r p < <(awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r, p }' "/proc/${CLONE_PIDS[i]}/smaps_rollup")
	echo "HOST-CLONE$i-RSS-PSS-KB=$r $p"
	rss=$((rss + r)) pss=$((pss + p))
done
echo "HOST-CLONES-RUNNING=$running"
echo "HOST-CLONES-ANSWERED=$answered"
echo "HOST-CLONES-RSS-KB=$rss"
echo "HOST-CLONES-PSS-KB=$pss"
read -r c t < <(counts clone1 | head -1)
echo "HOST-CLONE1-FIRST-COUNT=$c"
echo "HOST-CLONE1-FIRST-TIME=$t"
echo "HOST-CLOCK-OFFSET-CLONE1=$(clock_offset "$T/c1.sock")"

for p in "${CLONE_PIDS[@]}" "$SECOND"; do kill -TERM "$p" 2>/dev/null; done
for p in "${CLONE_PIDS[@]}" "$SECOND"; do wait "$p" 2>/dev/null; done
echo "HOST-DISK-SECTOR0=$(head -c 15 "$D/data.img")"
echo "HOST-DISK-SECTOR1=$(dd if="$D/data.img" bs=512 skip=1 count=1 2>/dev/null | tr -d '\000')"
for n in first second clone1 $FAILED_CLONES; do
	echo "--- $n console"
	cat "$T/$n.console"
done
echo "HOST-DONE"
