#!/usr/bin/env bash
# Row 12 of bench/README.md: PUT /snapshot/create on this host's /dev/kvm with the test guest.
#   Full: a 256 MiB guest that has touched about 20 MiB ("dirty-pages=5120" writes 5120
#         pages from 32 MiB at every count), without and with dirty page tracking
#   Diff: the same guest with tracking, writing N pages between two snapshots, for several N
# Each figure is the median (min, max) over RUNS snapshots (default 5) of the time ember logs
# for the create (state and memory file written), then the median of the CPU time it logs
# for it (the wall time on a busy host is mostly waiting for a core) and of the API round
# trip around it. The
# files go to SNAP_BENCH_DIR (default build/, the page cache of its file system; /dev/shm
# leaves the file system out). About 20 s on a quiet host.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
mem=256
tmp=$(mktemp -d -p "${SNAP_BENCH_DIR:-$PWD/build}" bench-snapshot.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
. bench/lib.sh

api() { # METHOD PATH [BODY]: the HTTP status; the round trip in us goes to $tmp/rt
	curl -s -o "$tmp/reply" -w '%{http_code} %{time_total}\n' --unix-socket "$tmp/api.sock" \
		-X "$1" "http://localhost$2" ${3:+-H 'Content-Type: application/json' -d "$3"} |
		awk -v rt="$tmp/rt" '{printf "%d\n", $2 * 1000000 > rt; print $1}'
}

must() { # METHOD PATH [BODY]: fails unless the answer is 2xx
	local code
	code=$(api "$@")
	[[ "$code" == 2* ]] || {
		echo "$1 $2: $code $(cat "$tmp/reply")" >&2
		exit 1
	}
}

count() { grep -ao 'count=[0-9]*'$'\r' "$tmp/out" | tail -1 | tr -dc 0-9; }

wait_count() { # N: until the guest printed count N (20 s at most)
	for _ in $(seq 400); do
		[ "$(count)" -ge "$1" ] 2>/dev/null && return 0
		sleep 0.05
	done
	echo "the guest never counted to $1" >&2
	exit 1
}

start() { # PAGES TRACK: a fresh ember running the guest, paused after its second count
	if [ -n "$pid" ]; then kill "$pid" && wait "$pid" 2>/dev/null || true; fi
	rm -f "$tmp/api.sock"
	build/ember --api-sock "$tmp/api.sock" >"$tmp/out" 2>&1 &
	pid=$!
	for _ in $(seq 200); do [ -S "$tmp/api.sock" ] && break; sleep 0.01; done
	must PUT /machine-config "{\"vcpu_count\": 1, \"mem_size_mib\": $mem, \"track_dirty_pages\": $2}"
	must PUT /boot-source "{\"kernel_image_path\": \"build/tests/guest.elf\", \"boot_args\": \"dirty-pages=$1\"}"
	must PUT /actions '{"action_type": "InstanceStart"}'
	wait_count 2
	must PATCH /vm '{"state": "Paused"}'
}

snap() { # TYPE: a snapshot of the paused VM; appends ember's time and the round trip (us)
	must PUT /snapshot/create "{\"snapshot_path\": \"$tmp/s.state\", \"mem_file_path\": \"$tmp/$1.mem\", \"snapshot_type\": \"$1\"}"
	cat "$tmp/rt" >>"$tmp/rt.list"
	grep -ao "snapshot: $1, [0-9]*-byte state written to [^ ]* in [0-9]* us ([0-9]* us of CPU)" \
		"$tmp/out" | tail -1 | sed 's/.* in \([0-9]*\) us (\([0-9]*\) us.*/\1 \2/' |
		while read -r us cpu; do
			echo "$us" >>"$tmp/us.list"
			echo "$cpu" >>"$tmp/cpu.list"
		done
}

run_on() { # until the guest counted 2 more, then paused again
	local c
	c=$(count)
	must PATCH /vm '{"state": "Resumed"}'
	wait_count $((c + 2))
	must PATCH /vm '{"state": "Paused"}'
}

row() { # LABEL: the medians of the last series
	read -r med min max < <(stats_ms "$tmp/us.list")
	read -r rmed _ _ < <(stats_ms "$tmp/rt.list")
	read -r cmed _ _ < <(stats_ms "$tmp/cpu.list")
	printf '%-50s %8s %8s %8s %8s %8s\n' "$1" "$med" "$min" "$max" "$cmed" "$rmed"
	clear_lists
}

clear_lists() { : >"$tmp/us.list" && : >"$tmp/rt.list" && : >"$tmp/cpu.list"; }

echo "files in $(df --output=fstype "$tmp" | tail -1) ($tmp), load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-50s %8s %8s %8s %8s %8s\n' "snapshot create, $mem MiB, $runs runs (ms)" median min max CPU "API rt"
clear_lists
for track in false true; do
	start 5120 $track
	for _ in $(seq "$runs"); do
		snap Full
		run_on
	done
	data=$(($(du -k "$tmp/Full.mem" | cut -f1) / 1024))
	row "  Full, ${data} MiB of data, tracking $track"
done
for pages in 256 1024 4096 8192; do
	start $pages true
	snap Full
	clear_lists
	for _ in $(seq "$runs"); do
		run_on
		snap Diff
	done
	written=$(grep -ao "snapshot: Diff, [0-9]* dirty pages" "$tmp/out" | tail -1 | tr -dc 0-9)
	row "  Diff, guest wrote $pages pages, $written in file"
done
