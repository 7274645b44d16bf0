#!/bin/bash
# Runs inside the emulated KVM host (or directly on a hardware KVM host), as root:
# creates TAP devices, boots ember with a Linux guest on them, and plays the host's side
# of the guest's script. Usage:
#   l1-net.sh DIR MODE [MIB]
# DIR holds nothing yet and is where every file goes (inside the repository); MODE:
#   transfer  ping, then MIB MiB each way over TCP (busybox nc) with SHA-256 on both ends
#   flap      ping, the host takes the TAP down and up, ping again
#   two       two NICs on two TAPs, each pinging its own host address
#   ratelimit a tx limit on eth0: MIB MiB guest to host, timed by the guest
#   ratefree  the same without the limit
#   ratelimit-rx  an rx limit on eth0: MIB MiB host to guest, timed by the guest from its
#             first byte
#   features  MTU 1400 on the NIC and the TAP: the guest's MTU and negotiated features,
#             pings that just fit, and MIB MiB host to guest (TSO frames through merged
#             receive buffers: more bytes per received packet than the MTU)
#   bench-ember, bench-qemu  ping RTT and MIB MiB each way with the given VMM (QEMU's
#             microvm with virtio-net-device on the same TAP): one line BENCH ...
# Prints the guest console and lines starting HOST- for the test to check.
set -u
D=$1 MODE=$2 MIB=${3:-4}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EMBER=${EMBER:-$ROOT/build/ember}
BB=busybox
# busybox nc: a listener whose stdin ends shuts its sending side down, and a sender that sees
# that stops sending. Listeners read this FIFO, which stays open and empty.
# (On L1's own /tmp: the repository's 9p share has no FIFOs.)
IDLE=/tmp/ember-net-idle.$$
idle() {
	[ -p "$IDLE" ] || { mkfifo "$IDLE" && exec 3<>"$IDLE"; }
}
ARGS="console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet"

# The test's own network namespace: nothing it creates outlives it or meets the host's.
if [ -z "${EMBER_NET_NS_INNER:-}" ]; then
	export EMBER_NET_NS_INNER=1
	exec unshare --net -- "$0" "$@"
fi
ip link set lo up

mktap() { # mktap NAME HOSTADDR
	ip tuntap add dev "$1" mode tap || return 1
	ip addr add "$2/24" dev "$1"
	ip link set "$1" up
}

nic() { # nic ID TAP MAC [extra json]
	echo "{ \"iface_id\": \"$1\", \"host_dev_name\": \"$2\", \"guest_mac\": \"$3\"${4:+, $4} }"
}

# script_drive and guest_config
. "$ROOT/tests/lib/l1-guest.sh"

config() { # config MEM NICS_JSON
	guest_config "$1" "\"network-interfaces\": [ $2 ]"
}

# Sends $D/to-guest to the guest's port 5002 once it listens (every refused connect costs
# nothing). It says so in a file, not on stdout: a line written there while the guest's
# console is printing would split one of the guest's lines.
send_to_guest() {
	for _ in $(seq 1500); do
		$BB nc 172.16.0.2 5002 <"$D/to-guest" 2>/dev/null && { : >"$D/send-done"; break; }
		sleep 0.2
	done
}

stop_sending() {
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	[ -e "$D/send-done" ] && echo HOST-SEND-DONE
}

run_ember() {
	timeout "${EMBER_NET_TIMEOUT:-400}" "$EMBER" --no-api --config-file "$D/vm.json" 2>&1
	echo "HOST-EMBER-STATUS=$?"
}

GUEST_UP='ip link set eth0 up && ip addr add 172.16.0.2/24 dev eth0'

case $MODE in
transfer)
	mktap tap0 172.16.0.1 || exit 1
	head -c $((MIB << 20)) /dev/urandom >"$D/to-guest"
	echo "HOST-TO-GUEST-SHA=$(sha256sum <"$D/to-guest" | cut -d' ' -f1)"
	script_drive <<SH
$GUEST_UP
ping -c 3 -W 5 172.16.0.1 && echo GUEST-PING-OK
dd if=/dev/urandom of=/tmp/out bs=1M count=$MIB 2>/dev/null
echo GUEST-SENT-SHA=\$(sha256sum </tmp/out | cut -d' ' -f1)
nc 172.16.0.1 5001 </tmp/out && echo GUEST-SEND-DONE
rm /tmp/out
# A listener whose stdin ends shuts its side down, and the sender stops sending when it
# sees that: stdin is a FIFO that stays open and empty.
mkfifo /tmp/idle && exec 3<>/tmp/idle
nc -l -p 5002 </tmp/idle >/tmp/in
echo GUEST-RECEIVED-SHA=\$(sha256sum </tmp/in | cut -d' ' -f1)
echo GUEST-RECEIVED-BYTES=\$(wc -c </tmp/in)
SH
	config $((MIB * 2 + 128)) "$(nic eth0 tap0 06:00:ac:10:00:02)"
	idle
	$BB nc -l -p 5001 <"$IDLE" >"$D/from-guest" &
	lpid=$!
	send_to_guest &
	spid=$!
	run_ember
	wait "$lpid"
	stop_sending
	echo "HOST-RECEIVED-SHA=$(sha256sum <"$D/from-guest" | cut -d' ' -f1)"
	echo "HOST-RECEIVED-BYTES=$(stat -c %s "$D/from-guest")"
	;;
flap)
	mktap tap0 172.16.0.1 || exit 1
	script_drive <<SH
$GUEST_UP
ping -c 2 -W 5 172.16.0.1 && echo GUEST-PING1-OK
# Through the host's down and up: frames sent meanwhile are lost, nothing more.
ping -c 8 -W 1 172.16.0.1 >/dev/null 2>&1
echo GUEST-PINGED-THROUGH-FLAP
ping -c 3 -W 5 172.16.0.1 && echo GUEST-PING2-OK
SH
	config 128 "$(nic eth0 tap0 06:00:ac:10:00:02)"
	(
		# Once the first pings are through, down for 2 s, then up again.
		sleep 1
		for _ in $(seq 600); do
			ip neigh show dev tap0 | grep -q 172.16.0.2 && break
			sleep 0.2
		done
		sleep 1
		ip link set tap0 down && echo HOST-TAP-DOWN
		sleep 2
		ip link set tap0 up && echo HOST-TAP-UP
	) &
	fpid=$!
	run_ember
	wait "$fpid"
	;;
two)
	mktap tap0 172.16.0.1 || exit 1
	mktap tap1 172.16.1.1 || exit 1
	script_drive <<SH
$GUEST_UP
ip link set eth1 up && ip addr add 172.16.1.2/24 dev eth1
cat /sys/class/net/eth0/address /sys/class/net/eth1/address
ping -c 2 -W 5 172.16.0.1 && echo GUEST-PING-ETH0-OK
ping -c 2 -W 5 172.16.1.1 && echo GUEST-PING-ETH1-OK
SH
	config 128 "$(nic eth0 tap0 06:00:ac:10:00:02), $(nic eth1 tap1 06:00:ac:10:01:02)"
	run_ember
	;;
ratelimit | ratefree)
	# EMBER_NET_RATE bytes/s (default 256 KiB/s), the bucket full at the start: MIB MiB
	# take (MIB MiB - rate) / rate seconds.
	rate=${EMBER_NET_RATE:-262144}
	mktap tap0 172.16.0.1 || exit 1
	script_drive <<SH
$GUEST_UP
ping -c 1 -W 5 172.16.0.1 >/dev/null
dd if=/dev/zero of=/tmp/out bs=1M count=$MIB 2>/dev/null
echo GUEST-T0=\$(cut -d' ' -f1 /proc/uptime)
nc 172.16.0.1 5001 </tmp/out && echo GUEST-SEND-DONE
echo GUEST-T1=\$(cut -d' ' -f1 /proc/uptime)
SH
	limit='"tx_rate_limiter": { "bandwidth": { "size": '$rate', "refill_time": 1000 } }'
	[ "$MODE" = ratefree ] && limit=
	config 192 "$(nic eth0 tap0 06:00:ac:10:00:02 "$limit")"
	idle
	$BB nc -l -p 5001 <"$IDLE" >"$D/from-guest" &
	lpid=$!
	run_ember
	wait "$lpid"
	echo "HOST-RECEIVED-BYTES=$(stat -c %s "$D/from-guest")"
	;;
ratelimit-rx)
	rate=${EMBER_NET_RATE:-262144}
	mktap tap0 172.16.0.1 || exit 1
	head -c $((MIB << 20)) /dev/zero >"$D/to-guest"
	script_drive <<SH
$GUEST_UP
mkfifo /tmp/idle && exec 3<>/tmp/idle
nc -l -p 5002 </tmp/idle >/tmp/in &
npid=\$!
while [ ! -s /tmp/in ] && kill -0 \$npid 2>/dev/null; do sleep 0.02; done
echo GUEST-T0=\$(cut -d' ' -f1 /proc/uptime)
wait \$npid
echo GUEST-T1=\$(cut -d' ' -f1 /proc/uptime)
echo GUEST-RECEIVED-BYTES=\$(wc -c </tmp/in)
SH
	config 192 "$(nic eth0 tap0 06:00:ac:10:00:02 '"rx_rate_limiter": { "bandwidth": { "size": '$rate', "refill_time": 1000 } }')"
	send_to_guest &
	spid=$!
	run_ember
	stop_sending
	;;
features)
	mktap tap0 172.16.0.1 || exit 1
	ip link set tap0 mtu 1400
	head -c $((MIB << 20)) /dev/urandom >"$D/to-guest"
	echo "HOST-TO-GUEST-SHA=$(sha256sum <"$D/to-guest" | cut -d' ' -f1)"
	script_drive <<SH
$GUEST_UP
echo GUEST-MTU=\$(cat /sys/class/net/eth0/mtu)
for d in /sys/bus/virtio/devices/*; do
	[ "\$(cat \$d/device)" = 0x0001 ] && echo GUEST-NET-FEATURES=\$(cat \$d/features)
done
# 1372 bytes of ICMP payload + 28 of headers: exactly the MTU, not fragmented.
ping -c 2 -W 5 -s 1372 172.16.0.1 && echo GUEST-PING-MTU-OK
p0=\$(cat /sys/class/net/eth0/statistics/rx_packets)
b0=\$(cat /sys/class/net/eth0/statistics/rx_bytes)
mkfifo /tmp/idle && exec 3<>/tmp/idle
nc -l -p 5002 </tmp/idle >/tmp/in
echo GUEST-RX-PACKETS=\$((\$(cat /sys/class/net/eth0/statistics/rx_packets) - p0))
echo GUEST-RX-BYTES=\$((\$(cat /sys/class/net/eth0/statistics/rx_bytes) - b0))
echo GUEST-RECEIVED-SHA=\$(sha256sum </tmp/in | cut -d' ' -f1)
SH
	config $((MIB * 2 + 128)) "$(nic eth0 tap0 06:00:ac:10:00:02 '"mtu": 1400')"
	send_to_guest &
	spid=$!
	run_ember
	stop_sending
	;;
bench-ember | bench-qemu)
	mktap tap0 172.16.0.1 || exit 1
	# Host to guest is much faster than the other way: 8 times as much, for the timer's
	# 10 ms resolution (on L1's tmpfs, not the repository's 9p share).
	big=/tmp/ember-net-to-guest.$$
	head -c $((MIB << 23)) /dev/zero >"$big"
	script_drive <<SH
$GUEST_UP
ping -c 3 -W 5 172.16.0.1 >/dev/null
echo GUEST-RTT=\$(ping -c 20 -i 0.2 172.16.0.1 | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p')
dd if=/dev/zero of=/tmp/out bs=1M count=$MIB 2>/dev/null
t0=\$(cut -d' ' -f1 /proc/uptime)
nc 172.16.0.1 5001 </tmp/out
t1=\$(cut -d' ' -f1 /proc/uptime)
rm /tmp/out
mkfifo /tmp/idle && exec 3<>/tmp/idle
rxb=\$(nc 172.16.0.1 5002 </tmp/idle | wc -c)
t2=\$(cut -d' ' -f1 /proc/uptime)
echo GUEST-RX-BYTES=\$rxb
echo GUEST-TIMES=\$t0,\$t1,\$t2
SH
	idle
	$BB nc -l -p 5001 <"$IDLE" >/dev/null &
	$BB nc -l -p 5002 <"$big" &
	if [ "$MODE" = bench-ember ]; then
		config $((MIB + 128)) "$(nic eth0 tap0 06:00:ac:10:00:02)"
		out=$(run_ember)
	else
		# shellcheck disable=SC2054 # the commas belong to QEMU's options
		out=$(timeout "${EMBER_NET_TIMEOUT:-400}" qemu-system-x86_64 \
			-M microvm,acpi=off,x-option-roms=off,auto-kernel-cmdline=off,rtc=off \
			-device i8042 -accel kvm -cpu host -m $((MIB + 128)) -smp 1 -nodefaults \
			-no-user-config -display none -serial stdio -no-reboot \
			-kernel "$ROOT/build/guest/vmlinux" -initrd "$ROOT/build/guest/initramfs.cpio.gz" \
			-netdev tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=off \
			-device virtio-net-device,netdev=n0,mac=06:00:ac:10:00:02 \
			-drive file="$D/script.sh",if=none,id=d0,format=raw,readonly=on \
			-device virtio-blk-device,drive=d0 \
			-append "$ARGS virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11 -- sh /dev/vda" 2>&1)
	fi
	echo "$out" | grep -a -E 'GUEST-|STATUS' >&2
	rtt=$(echo "$out" | sed -n 's/^GUEST-RTT=//p' | tr -d '\r')
	times=$(echo "$out" | sed -n 's/^GUEST-TIMES=//p' | tr -d '\r')
	rxb=$(echo "$out" | sed -n 's/^GUEST-RX-BYTES=//p' | tr -d '\r ')
	rm -f "$big"
	# Only a complete receive counts.
	[ "$rxb" = $((MIB << 23)) ] || times=
	echo "$times" | awk -F, -v m="$MIB" -v rtt="$rtt" -v vmm="${MODE#bench-}" \
		'NF == 3 { printf "BENCH vmm=%s guest_to_host_MiBps=%.2f host_to_guest_MiBps=%.2f rtt_ms=%s\n", vmm, m / ($2 - $1), 8 * m / ($3 - $2), rtt }'
	;;
*)
	echo "l1-net.sh: unknown mode $MODE" >&2
	exit 2
	;;
esac
