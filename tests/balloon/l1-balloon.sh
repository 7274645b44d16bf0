#!/bin/bash
# Runs inside the emulated KVM host (or directly on a hardware KVM host), as root: boots
# ember with a 256 MiB Linux guest and a balloon, and plays the host's side of the guest's
# script (on a raw drive: the guest's markers are never on its command line). Usage:
#   l1-balloon.sh DIR MODE
# DIR (inside the repository) gets the VM's config, the guest's script and the metrics; the
# API socket goes to L1's own /tmp. MODE:
#   inflate      the guest touches nearly all its free memory and frees it; the host
#                inflates the balloon by 128 MiB through PATCH /balloon and waits for
#                actual_mib; ember's VmRSS before and after; the guest's MemTotal and
#                MemAvailable after; statistics (every second) read twice, the metrics
#                flushed 6 s apart; then a deflate, after which the guest fills 180 MiB;
#                then free page hinting: the guest frees the 180 MiB, the host starts a run
#                without acknowledge_on_stop and polls its status until the guest's STOP;
#                ember's VmRSS before and after; the guest shows the hinted memory held by
#                its driver until the host's stop, then back
#   oom          a 128 MiB balloon with deflate_on_oom from boot: once it is inflated the
#                guest fills 170 MiB, past the balloon
#   oom-control  the same without deflate_on_oom
#   report       free page reporting: the guest fills 160 MiB and frees it; ember's VmRSS
#                when it is full and over the 20 s after the free
# Prints the guest console and lines starting HOST- for the test to check.
set -u
D=$1 MODE=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EMBER=${EMBER:-$ROOT/build/ember}
ARGS="console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet"

T=$(mktemp -d /tmp/ember-balloon.XXXXXX)
SOCK=$T/api.sock
CONSOLE=$T/console
TPID='' EPID=''
cleanup() {
	[ -z "$TPID" ] || kill "$TPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

# script_drive and guest_config
. "$ROOT/tests/lib/l1-guest.sh"

# Starts ember (with the API) with the console in $CONSOLE; TPID is timeout's, EPID ember's.
start_ember() {
	timeout "${EMBER_BALLOON_TIMEOUT:-400}" "$EMBER" --api-sock "$SOCK" --config-file "$D/vm.json" \
		--metrics-path "$D/metrics" >"$CONSOLE" 2>&1 &
	TPID=$!
	for _ in $(seq 100); do
		EPID=$(pgrep -P "$TPID")
		[ -n "$EPID" ] && return 0
		sleep 0.05
	done
	echo "HOST-NO-EMBER-PID"
}

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

api() { # api METHOD PATH [BODY]: the reply's body
	curl -s --max-time 10 --unix-socket "$SOCK" -X "$1" ${3:+-H 'Content-Type: application/json' -d "$3"} \
		"http://localhost$2"
}

rss_kb() { # ember's VmRSS in kB
	local k v _
	while read -r k v _; do
		[ "$k" = VmRSS: ] && echo "$v" && return
	done <"/proc/$EPID/status" 2>/dev/null
}

# The guest's helpers: meminfo KEY (kB), and fill MIB (a file of MIB MiB on a tmpfs as large
# as RAM, which cannot be swapped or dropped: the guest really holds that memory).
GUEST_LIB='
meminfo() { awk -v k="$1:" '"'"'$1 == k { print $2 }'"'"' /proc/meminfo; }
mkdir -p /mnt/fill && mount -t tmpfs -o size=100% tmpfs /mnt/fill
fill() { dd if=/dev/zero of=/mnt/fill/f bs=1M count=$1 2>/dev/null; echo "rc=$? mib=$(($(wc -c </mnt/fill/f) >> 20))"; }
'

balloon_json() { # balloon_json AMOUNT DEFLATE_ON_OOM STATS REPORTING [HINTING]
	echo "\"balloon\": { \"amount_mib\": $1, \"deflate_on_oom\": $2, \"stats_polling_interval_s\": $3, \"free_page_reporting\": $4, \"free_page_hinting\": ${5:-false} }"
}

case $MODE in
inflate)
	script_drive <<SH
$GUEST_LIB
mt0=\$(meminfo MemTotal)
# Touch nearly every free page (all but 24 MiB), then give them back to the guest: the host
# keeps them (no free page reporting here).
fill \$((\$(meminfo MemFree) / 1024 - 24)) >/dev/null
rm /mnt/fill/f
echo GUEST-TOUCHED memtotal=\$mt0 avail=\$(meminfo MemAvailable)
# Without deflate_on_oom the driver takes inflated pages off MemTotal: wait for all 128 MiB
# (the driver inflates in steps of 1 MiB).
for i in \$(seq 240); do [ \$(meminfo MemTotal) -le \$((mt0 - 128 * 1024)) ] && break; sleep 1; done
echo GUEST-INFLATED memtotal=\$(meminfo MemTotal) avail=\$(meminfo MemAvailable)
for i in \$(seq 240); do [ \$(meminfo MemTotal) -ge \$((mt0 - 4096)) ] && break; sleep 1; done
echo GUEST-DEFLATED memtotal=\$(meminfo MemTotal) avail=\$(meminfo MemAvailable)
echo GUEST-USED-AGAIN \$(fill 180)
# Free page hinting: the freed 180 MiB stay with the host until the host's run. The driver
# holds the blocks it hints at (MemAvailable falls) until the host's stop (it rises again).
rm /mnt/fill/f
a0=\$(meminfo MemAvailable)
echo GUEST-FREED-AGAIN avail=\$a0
for i in \$(seq 480); do [ \$(meminfo MemAvailable) -le \$((a0 - 64 * 1024)) ] && break; sleep 0.25; done
echo GUEST-HINT-HELD avail=\$(meminfo MemAvailable)
for i in \$(seq 480); do [ \$(meminfo MemAvailable) -ge \$((a0 - 16 * 1024)) ] && break; sleep 0.25; done
echo GUEST-HINT-RETURNED avail=\$(meminfo MemAvailable)
# Time for the host's last reads before the VM ends.
sleep 3
SH
	guest_config 256 "$(balloon_json 0 false 1 false true)"
	start_ember
	wait_console GUEST-TOUCHED 240
	sleep 1
	echo "HOST-RSS-TOUCHED-KB=$(rss_kb)"
	echo "HOST-PATCH-INFLATE=$(api PATCH /balloon '{"amount_mib": 128}')"
	t0=$(date +%s)
	for _ in $(seq 240); do
		[ "$(api GET /balloon/statistics | jq -r .actual_mib)" = 128 ] && break
		sleep 1
	done
	echo "HOST-INFLATE-S=$(($(date +%s) - t0))"
	echo "HOST-STATS-INFLATED=$(api GET /balloon/statistics)"
	echo "HOST-BALLOON=$(api GET /balloon)"
	wait_console GUEST-INFLATED 60
	sleep 1
	echo "HOST-RSS-INFLATED-KB=$(rss_kb)"
	# The statistics updates the device counts in 6 s, at an interval of 1 s.
	# A periodic flush may fall inside the window: its lines are summed.
	api PUT /actions '{"action_type": "FlushMetrics"}'
	s0=$(date +%s%N) n0=$(wc -l <"$D/metrics")
	sleep 6
	api PUT /actions '{"action_type": "FlushMetrics"}'
	s1=$(date +%s%N) n1=$(wc -l <"$D/metrics")
	echo "HOST-STATS-WINDOW-MS=$(((s1 - s0) / 1000000))"
	echo "HOST-STATS-UPDATES=$(sed -n "$((n0 + 1)),${n1}p" "$D/metrics" | jq -s 'map(.balloon.stats_updates_count) | add')"
	echo "HOST-STATS-LATER=$(api GET /balloon/statistics)"
	echo "HOST-PATCH-DEFLATE=$(api PATCH /balloon '{"amount_mib": 0}')"
	wait_console GUEST-USED-AGAIN 240
	wait_console GUEST-FREED-AGAIN 60
	sleep 1
	echo "HOST-RSS-FREED-KB=$(rss_kb)"
	echo "HOST-HINT-STATUS-BEFORE=$(api GET /balloon/hinting/status)"
	echo "HOST-HINT-START=$(api PATCH /balloon/hinting/start '{"acknowledge_on_stop": false}')"
	t0=$(date +%s%N)
	for _ in $(seq 1200); do
		[ "$(api GET /balloon/hinting/status | jq -r .guest_cmd)" = 0 ] && break
		sleep 0.1
	done
	echo "HOST-HINT-MS=$((($(date +%s%N) - t0) / 1000000))"
	echo "HOST-HINT-STATUS-STOPPED=$(api GET /balloon/hinting/status)"
	echo "HOST-RSS-HINTED-KB=$(rss_kb)"
	wait_console GUEST-HINT-HELD 60
	echo "HOST-HINT-STOP=$(api PATCH /balloon/hinting/stop)"
	echo "HOST-HINT-STATUS-DONE=$(api GET /balloon/hinting/status)"
	wait_console GUEST-HINT-RETURNED 60
	api PUT /actions '{"action_type": "FlushMetrics"}' >/dev/null
	finish_ember
	;;
oom | oom-control)
	script_drive <<SH
$GUEST_LIB
# Wait for the balloon: 128 MiB of 256 gone from what the guest can use.
for i in \$(seq 240); do [ \$(meminfo MemAvailable) -le \$((120 * 1024)) ] && break; sleep 1; done
echo GUEST-INFLATED memtotal=\$(meminfo MemTotal) avail=\$(meminfo MemAvailable)
echo GUEST-FILLED \$(fill 170)
echo GUEST-AFTER avail=\$(meminfo MemAvailable)
SH
	deflate=true
	[ "$MODE" = oom ] || deflate=false
	guest_config 256 "$(balloon_json 128 $deflate 0 false)"
	start_ember
	wait_console GUEST-INFLATED 240
	echo "HOST-BALLOON=$(api GET /balloon)"
	wait_console EMBER-EXIT-STATUS 300
	api PUT /actions '{"action_type": "FlushMetrics"}' >/dev/null
	finish_ember
	;;
report)
	script_drive <<SH
$GUEST_LIB
echo GUEST-FILLED \$(fill 160)
sleep 4
rm /mnt/fill/f
echo GUEST-FREED avail=\$(meminfo MemAvailable)
sleep 20
echo GUEST-DONE
SH
	guest_config 256 "$(balloon_json 0 false 0 true)"
	start_ember
	wait_console GUEST-FILLED 240
	sleep 1
	echo "HOST-RSS-FILLED-KB=$(rss_kb)"
	wait_console GUEST-FREED 60
	low=$(rss_kb)
	for _ in $(seq 200); do
		r=$(rss_kb)
		[ -n "$r" ] && [ "$r" -lt "$low" ] && low=$r
		grep -aq GUEST-DONE "$CONSOLE" && break
		sleep 0.1
	done
	echo "HOST-RSS-AFTER-FREE-MIN-KB=$low"
	api PUT /actions '{"action_type": "FlushMetrics"}' >/dev/null
	finish_ember
	;;
*)
	echo "usage: $0 DIR inflate|oom|oom-control|report" >&2
	exit 2
	;;
esac
