#!/bin/bash
# Runs inside the emulated KVM host (or directly on a hardware KVM host), as root: boots
# ember with a Linux guest and a virtio-vsock device, and plays the host's side of the
# guest's script with build/ember-vsock (the guest has it as /bin/ember-vsock). Usage:
#   l1-vsock.sh DIR MODE [MIB]
# DIR holds nothing yet; the VM's config and the guest's script go there (inside the
# repository); the Unix sockets go to L1's own /tmp (the 9p share has none). MODE:
#   echo     host to guest (uds-connect to the guest's listen) and guest to host (connect 2 P
#            to the host's uds-listen at <uds_path>_P): a line, then 1 MiB with SHA-256
#   refused  a connect to a port nobody listens on, each way: status, message, time; then
#            a connect that works
#   many     32 connections each way at once, MIB MiB each (default 8); the receiving end
#            hashes what it got and sends the SHA-256 back for the sender to compare
#   many-qemu  the same with QEMU's microvm and vhost-vsock in ember's place
#   slow     the guest sends MIB MiB (default 4) to a host reader that pauses 2 s first:
#            ember's VmRSS before, at its highest and after; the guest's send time; SHA-256
#   reboot   a host connection is open when the guest runs reboot -f
#   reset    a host connection is open when the guest unbinds its vsock driver (a device
#            reset) and binds it again; then a new connection
#   bench-ember, bench-qemu  with the given VMM (QEMU: microvm with vhost-vsock-device,
#            whose host end is AF_VSOCK): ping (host connect until the guest accepted, i.e.
#            until OK with ember; round trip), stream each way (MIB MiB, default 64), and a
#            guest-side ping to a host listener: one line BENCH ...
# Prints the guest console and lines starting HOST- for the test to check.
set -u
D=$1 MODE=$2 MIB=${3:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EMBER=${EMBER:-$ROOT/build/ember}
VS=$ROOT/build/ember-vsock
N=${EMBER_VSOCK_CONNS:-32}
PINGS=${EMBER_VSOCK_PINGS:-50}
ARGS="console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet"

T=$(mktemp -d /tmp/ember-vsock.XXXXXX)
SOCK=$T/v.sock
CONSOLE=$T/console
BG=() # host-side helpers to stop at the end
TPID='' EPID=''
cleanup() {
	local p
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
	[ -z "$TPID" ] || kill "$TPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

# script_drive and guest_config
. "$ROOT/tests/lib/l1-guest.sh"

config() { # config MEM
	guest_config "$1" "\"vsock\": { \"guest_cid\": 3, \"uds_path\": \"$SOCK\" }"
}

# Starts ember with the console in $CONSOLE; TPID is timeout's, EPID ember's own PID.
start_ember() {
	timeout "${EMBER_VSOCK_TIMEOUT:-400}" "$EMBER" --no-api --config-file "$D/vm.json" >"$CONSOLE" 2>&1 &
	TPID=$!
	for _ in $(seq 100); do
		EPID=$(pgrep -P "$TPID")
		[ -n "$EPID" ] && return 0
		sleep 0.05
	done
	echo "HOST-NO-EMBER-PID"
}

# start_qemu MEM: the same guest in QEMU's microvm with vhost-vsock-device (CID 3), whose
# host end is AF_VSOCK here instead of Unix sockets: the peer of the bench and "many-qemu".
start_qemu() {
	# shellcheck disable=SC2054 # the commas belong to QEMU's options
	timeout "${EMBER_VSOCK_TIMEOUT:-400}" qemu-system-x86_64 \
		-M microvm,acpi=off,x-option-roms=off,auto-kernel-cmdline=off,rtc=off \
		-device i8042 -accel kvm -cpu host -m "$1" -smp 1 -nodefaults \
		-no-user-config -display none -serial stdio -no-reboot \
		-kernel "$ROOT/build/guest/vmlinux" -initrd "$ROOT/build/guest/initramfs.cpio.gz" \
		-device vhost-vsock-device,guest-cid=3 \
		-drive file="$D/script.sh",if=none,id=d0,format=raw,readonly=on \
		-device virtio-blk-device,drive=d0 \
		-append "$ARGS virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11 -- sh /dev/vda" \
		</dev/null >"$CONSOLE" 2>&1 &
	TPID=$!
}

# Waits for ember's exit, then prints its status and the guest console.
finish_ember() {
	wait "$TPID"
	echo "HOST-EMBER-STATUS=$?"
	TPID=''
	echo "--- guest console"
	cat "$CONSOLE"
	echo "---"
}

wait_console() { # wait_console PATTERN SECONDS: 0 once the console has PATTERN
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		grep -aq -- "$1" "$CONSOLE" && return 0
		kill -0 "$TPID" 2>/dev/null || break
		sleep 0.1
	done
	echo "HOST-NEVER-SAW: $1"
	return 1
}

host_listen() { # host_listen PORT [CMD...]: the host end of guest connects to PORT
	local port=$1
	shift
	"$VS" uds-listen "${SOCK}_$port" "$@" 2>>"$T/host-listen.log" &
	BG+=($!)
	for _ in $(seq 100); do
		[ -S "${SOCK}_$port" ] && return 0
		sleep 0.05
	done
	echo "HOST-LISTEN-FAILED $port"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }
sha() { sha256sum | cut -d' ' -f1; }
rss_kb() { # ember's VmRSS in kB
	local k v _
	while read -r k v _; do
		[ "$k" = VmRSS: ] && echo "$v" && return
	done <"/proc/$EPID/status" 2>/dev/null
}

# conn_end PID: the host connection PID (output in $T/out, errors in $T/err) must end
# within 5 s: its status, how long it took, and what it received.
conn_end() {
	local t0 i
	t0=$(now_ms)
	for ((i = 0; i < 50; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		echo "HOST-CONN-STILL-RUNNING"
		kill "$1"
	fi
	wait "$1"
	echo "HOST-CONN-STATUS=$?"
	echo "HOST-CONN-EXIT-MS=$(($(now_ms) - t0))"
	echo "HOST-CONN-OUT=$(cat "$T/out")"
	cat "$T/err"
}

case $MODE in
echo)
	host_listen 5001
	script_drive <<'SH'
r=$(echo guest-to-host-hello | ember-vsock connect 2 5001)
echo "GUEST-G2H-RC=$?"
echo "GUEST-G2H-REPLY=$r"
head -c 1048576 /dev/urandom >/tmp/blob
echo GUEST-G2H-SENT-SHA=$(sha256sum </tmp/blob | cut -d' ' -f1)
echo GUEST-G2H-ECHO-SHA=$(ember-vsock connect 2 5001 </tmp/blob | sha256sum | cut -d' ' -f1)
ember-vsock listen -n 2 5000
SH
	config 128
	head -c 1048576 /dev/urandom >"$T/blob"
	start_ember
	if wait_console "listening on 5000" 120; then
		r=$(echo host-to-guest-hello | "$VS" uds-connect "$SOCK" 5000)
		echo "HOST-H2G-RC=$?"
		echo "HOST-H2G-REPLY=$r"
		echo "HOST-H2G-SENT-SHA=$(sha <"$T/blob")"
		echo "HOST-H2G-ECHO-SHA=$("$VS" uds-connect "$SOCK" 5000 <"$T/blob" | sha)"
	fi
	finish_ember
	;;
refused)
	script_drive <<'SH'
t0=$(cut -d' ' -f1 /proc/uptime)
ember-vsock connect 2 5555 </dev/null
echo "GUEST-REFUSED-RC=$?"
t1=$(cut -d' ' -f1 /proc/uptime)
echo GUEST-REFUSED-SECS=$(awk "BEGIN { print $t1 - $t0 }")
ember-vsock listen -n 1 5000
SH
	config 128
	start_ember
	if wait_console "listening on 5000" 120; then
		t0=$(now_ms)
		"$VS" uds-connect "$SOCK" 5556 </dev/null 2>"$T/err"
		echo "HOST-REFUSED-RC=$?"
		echo "HOST-REFUSED-MS=$(($(now_ms) - t0))"
		echo "HOST-REFUSED-MSG=$(cat "$T/err")"
		echo "HOST-AFTER-REPLY=$(echo still-works | "$VS" uds-connect "$SOCK" 5000)"
	fi
	finish_ember
	;;
many | many-qemu)
	MIB=${MIB:-8}
	if [ "$MODE" = many ]; then
		to=(uds- "$SOCK") # uds-connect PATH PORT
		host_listen 5002 sha256sum
	else
		to=("" 3) # connect CID PORT, through vhost-vsock
		"$VS" listen 5002 sha256sum 2>>"$T/host-listen.log" &
		BG+=($!)
	fi
	{
		echo "MIB=$MIB N=$N"
		cat <<'SH'
head -c $((MIB << 20)) /dev/urandom >/tmp/blob
# Host to guest: each connection's SHA-256, computed here, goes back on it. No count: a
# connect the host tried again after 2 s without an answer may still reach this listener
# late, and be reset. The host says it is done with a connection to 5003.
ember-vsock listen 5001 sha256sum &
h2g_listener=$!
ember-vsock listen -n 1 5003 &
host_done=$!
# Every connection is made first, then all of them send at once: the FIFO's reader sees
# EOF when its writer closes. Connecting while 63 other streams run would measure how
# slow an emulated guest is, not ember.
mkfifo /tmp/go
t0=$(cut -d' ' -f1 /proc/uptime)
i=1 g2h=
while [ $i -le $N ]; do
	( { echo conn-$i; read x </tmp/go; cat /tmp/blob; } | ember-vsock connect -r 3 2 5002 >/tmp/g2h-$i 2>/tmp/g2h-err-$i; echo $? >/tmp/g2h-rc-$i ) &
	g2h="$g2h $!"
	i=$((i + 1))
done
sleep 3
sleep 2 >/tmp/go
wait $g2h
t1=$(cut -d' ' -f1 /proc/uptime)
echo GUEST-SECS=$(awk "BEGIN { print $t1 - $t0 }")
ok=0 i=1
while [ $i -le $N ]; do
	want=$({ echo conn-$i; cat /tmp/blob; } | sha256sum | cut -d' ' -f1)
	got=$(cut -d' ' -f1 /tmp/g2h-$i)
	if [ "$want" = "$got" ]; then ok=$((ok + 1)); else echo "GUEST-G2H-BAD conn=$i rc=$(cat /tmp/g2h-rc-$i) got=$got $(head -c 300 /tmp/g2h-err-$i)"; fi
	i=$((i + 1))
done
echo GUEST-G2H-RETRIES=$(cat /tmp/g2h-err-* | grep -c "failed:")
echo GUEST-G2H-OK=$ok
wait $host_done
kill $h2g_listener
SH
	} | script_drive
	head -c $((MIB << 20)) /dev/urandom >"$T/blob"
	if [ "$MODE" = many ]; then
		config 256
		start_ember
	else
		start_qemu 256
	fi
	if wait_console "listening on 5001" 120; then
		t0=$(now_ms)
		pids=()
		mkfifo "$T/go" # as in the guest: connect all, then send all at once
		for ((i = 1; i <= N; i++)); do
			(
				{ echo "conn-$i"; read -r _ <"$T/go"; cat "$T/blob"; } | "$VS" "${to[0]}connect" -r 3 "${to[1]}" 5001 >"$T/h2g-$i" 2>"$T/h2g-err-$i"
				echo $? >"$T/h2g-rc-$i"
			) &
			pids+=($!)
		done
		sleep 3
		sleep 2 >"$T/go"
		wait "${pids[@]}"
		echo "HOST-H2G-MS=$(($(now_ms) - t0))"
		ok=0
		for ((i = 1; i <= N; i++)); do
			want=$({ echo "conn-$i"; cat "$T/blob"; } | sha)
			got=$(cut -d' ' -f1 "$T/h2g-$i")
			if [ "$want" = "$got" ]; then
				ok=$((ok + 1))
			else
				echo "HOST-H2G-BAD conn=$i rc=$(cat "$T/h2g-rc-$i") got=$(head -c 300 "$T/h2g-$i") $(head -c 300 "$T/h2g-err-$i")"
			fi
		done
		echo "HOST-H2G-RETRIES=$(cat "$T"/h2g-err-* | grep -c "failed:")"
		# The guest waits for this before it ends; without it, end ember (the test fails).
		"$VS" "${to[0]}connect" -r 20 "${to[1]}" 5003 </dev/null >/dev/null 2>&1 ||
			{ echo "HOST-DONE-CONNECT-FAILED"; kill "$TPID"; }
		echo "HOST-H2G-OK=$ok"
	fi
	finish_ember
	;;
slow)
	MIB=${MIB:-4}
	{
		echo "MIB=$MIB"
		cat <<'SH'
head -c $((MIB << 20)) /dev/urandom >/tmp/big
echo GUEST-SENT-SHA=$(sha256sum </tmp/big | cut -d' ' -f1)
ember-vsock listen -n 1 5000 sh -c 'echo GUEST-SEND-T0=$(cut -d" " -f1 /proc/uptime) >&2; cat /tmp/big; echo GUEST-SEND-T1=$(cut -d" " -f1 /proc/uptime) >&2'
# Until the host has looked at ember's RSS after the transfer.
ember-vsock listen -n 1 5099
SH
	} | script_drive
	config 128
	# The reader's stdin stays open and empty: no half-close, only the pause.
	mkfifo "$T/idle" && exec 3<>"$T/idle"
	start_ember
	if wait_console "listening on 5000" 120; then
		before=$(rss_kb)
		echo "HOST-RSS-BEFORE=$before"
		t0=$(now_ms)
		(
			"$VS" uds-connect "$SOCK" 5000 <"$T/idle" 2>"$T/err" | {
				sleep 2
				cat >"$T/received"
			}
			echo "${PIPESTATUS[0]}" >"$T/rc"
		) &
		cpid=$!
		max=$before
		while kill -0 "$cpid" 2>/dev/null; do
			r=$(rss_kb)
			[ -n "$r" ] && [ "$r" -gt "$max" ] && max=$r
			sleep 0.1
		done
		echo "HOST-RSS-MAX=$max"
		echo "HOST-SLOW-MS=$(($(now_ms) - t0))"
		echo "HOST-RSS-AFTER=$(rss_kb)"
		"$VS" uds-connect "$SOCK" 5099 </dev/null
		echo "HOST-SLOW-RC=$(cat "$T/rc")"
		cat "$T/err"
		echo "HOST-RECEIVED-SHA=$(sha <"$T/received")"
		echo "HOST-RECEIVED-BYTES=$(stat -c %s "$T/received")"
	fi
	finish_ember
	;;
reboot)
	script_drive <<'SH'
ember-vsock listen -n 1 5000 sh -c 'touch /tmp/connected; exec cat' &
while [ ! -e /tmp/connected ]; do sleep 0.1; done
# Time for the host's line to come back through cat before the reset.
sleep 1
echo GUEST-REBOOTING
reboot -f
SH
	config 128
	mkfifo "$T/in" && exec 4<>"$T/in"
	start_ember
	if wait_console "listening on 5000" 120; then
		"$VS" uds-connect "$SOCK" 5000 <"$T/in" >"$T/out" 2>"$T/err" &
		cpid=$!
		echo ping-before-reboot >&4
		wait "$TPID"
		echo "HOST-EMBER-STATUS=$?"
		TPID=''
		conn_end "$cpid"
		echo "--- guest console"
		cat "$CONSOLE"
	else
		finish_ember
	fi
	;;
reset)
	script_drive <<'SH'
ember-vsock listen -n 1 5000 sh -c 'touch /tmp/connected; exec cat' &
while [ ! -e /tmp/connected ]; do sleep 0.1; done
sleep 1
drv=/sys/bus/virtio/drivers/vmw_vsock_virtio_transport
dev=$(basename "$(ls -d $drv/virtio*)")
echo "GUEST-UNBINDING $dev"
echo "$dev" >$drv/unbind
sleep 1
echo "$dev" >$drv/bind
echo "GUEST-REBOUND=$(ls -d $drv/virtio* | wc -l)"
ember-vsock listen -n 1 5001
SH
	config 128
	mkfifo "$T/in" && exec 4<>"$T/in"
	start_ember
	if wait_console "listening on 5000" 120; then
		"$VS" uds-connect "$SOCK" 5000 <"$T/in" >"$T/out" 2>"$T/err" &
		cpid=$!
		echo ping-before-reset >&4
		wait_console "GUEST-UNBINDING" 60
		conn_end "$cpid"
		if wait_console "listening on 5001" 60; then
			echo "HOST-AFTER-REPLY=$(echo after-reset | "$VS" uds-connect "$SOCK" 5001)"
		fi
	fi
	finish_ember
	;;
bench-ember | bench-qemu)
	# The peer: QEMU's microvm with vhost-vsock-device, whose host end is AF_VSOCK here
	# (CID 3) instead of Unix sockets; the same guest script and tool.
	MIB=${MIB:-64}
	if [ "$MODE" = bench-ember ]; then
		to=(uds- "$SOCK") # uds-ping PATH PORT ...
		host_listen 5003
	else
		to=("" 3) # ping CID PORT ...
		"$VS" listen 5003 2>>"$T/host-listen.log" &
		BG+=($!)
	fi
	{
		echo "MIB=$MIB PINGS=$PINGS"
		cat <<'SH'
ember-vsock listen 5000 &
ember-vsock listen 5001 ember-vsock sink &
ember-vsock listen 5002 ember-vsock source $MIB &
echo GUEST-$(ember-vsock ping 2 5003 $PINGS)
ember-vsock listen -n 1 5099
SH
	} | script_drive
	if [ "$MODE" = bench-ember ]; then
		config 128
		start_ember
	else
		start_qemu 128
	fi
	if wait_console "listening on 5099" 120; then
		"$VS" "${to[0]}ping" "${to[1]}" 5000 "$PINGS" | tee "$T/ping"
		"$VS" "${to[0]}stream" "${to[1]}" 5001 "$MIB" | tee "$T/h2g"
		"$VS" "${to[0]}stream" "${to[1]}" 5002 0 | tee "$T/g2h"
		"$VS" "${to[0]}connect" "${to[1]}" 5099 </dev/null
	fi
	finish_ember >"$T/out"
	grep -a -E 'GUEST-|STATUS' "$T/out" >&2
	field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" "$1" 2>/dev/null | tr -d '\r'; }
	tr -d '\r' <"$T/out" | sed -n 's/^GUEST-PING/PING/p' >"$T/gping"
	# Only complete transfers count.
	[ "$(field "$T/h2g" sent_bytes)" = $((MIB << 20)) ] || : >"$T/h2g"
	[ "$(field "$T/g2h" recv_bytes)" = $((MIB << 20)) ] || : >"$T/g2h"
	echo "BENCH vmm=${MODE#bench-} connect_us=$(field "$T/ping" connect_median_us) rtt_us=$(field "$T/ping" rtt_median_us)" \
		"host_to_guest_MiBps=$(field "$T/h2g" MiBps) guest_to_host_MiBps=$(field "$T/g2h" MiBps)" \
		"guest_connect_us=$(field "$T/gping" connect_median_us) guest_rtt_us=$(field "$T/gping" rtt_median_us)"
	;;
*)
	echo "l1-vsock.sh: unknown mode $MODE" >&2
	exit 2
	;;
esac
