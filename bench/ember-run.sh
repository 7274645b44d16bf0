#!/usr/bin/env bash
# ember-run end to end: `ember-run --template DIR -- true` (restore, agent, command,
# teardown) against a cold `ember-run -- true` (boot of the same guest), the phases of a
# template run (its --json timings), runs per second with 1, 2 and 8 in parallel, and
# `bwrap --unshare-all` (a container-style sandbox, no VM boundary) as the floor, all in
# one run of the same host.
#   bench/ember-run.sh [-n RUNS] [-c COLD] [-t THROUGHPUT_RUNS]
# Needs a standard /dev/kvm; on a PVM host it re-runs itself inside the emulated KVM host
# (1 vCPU by default, faster here on every measure than 2 on this 2-core machine; EMBER_BENCH_SMP=2
# gives it both). Prints BENCH lines and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=20 cold=3 tput=16
while (($#)); do
	case "$1" in
	-n) runs=$2; shift 2 ;;
	-c) cold=$2; shift 2 ;;
	-t) tput=$2; shift 2 ;;
	*) echo "usage: $0 [-n RUNS] [-c COLD] [-t THROUGHPUT_RUNS]" >&2; exit 2 ;;
	esac
done

. tests/lib/host-kind.sh
if [[ "$(ember_host_kind)" == vmhost ]]; then
	export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-590}
	exec tests/vmhost/run --smp "${EMBER_BENCH_SMP:-1}" -- bench/ember-run.sh -n "$runs" -c "$cold" -t "$tput"
fi

ER=$PWD/build/ember-run
dir=$PWD/build/bench-ember-run.$$
rm -rf "$dir" && mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
export TMPDIR=/tmp

now_us() { echo $(($(date +%s%N) / 1000)); }

# median FILE: the median of a file of numbers, one a line.
median() {
	sort -n "$1" | awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

"$ER" --make-template "$dir/tpl" >/dev/null
"$ER" --template "$dir/tpl" -- true # warm: the page cache holds the template
"$ER" --template "$dir/tpl" -- true

# Template runs, end to end as the caller sees them, and their phases.
: >"$dir/tpl.us"
for ((i = 0; i < runs; i++)); do
	t0=$(now_us)
	"$ER" --template "$dir/tpl" --json -- true >"$dir/j.$i"
	t1=$(now_us)
	echo $((t1 - t0)) >>"$dir/tpl.us"
done
for ph in restore connect command teardown total; do
	for ((i = 0; i < runs; i++)); do jq ".timings_ms.$ph" "$dir/j.$i"; done >"$dir/ph.$ph"
done

# Cold runs: boot of build/guest with the agent, the command, teardown.
: >"$dir/cold.us"
for ((i = 0; i < cold; i++)); do
	t0=$(now_us)
	"$ER" --json -- true >"$dir/c.$i"
	t1=$(now_us)
	echo $((t1 - t0)) >>"$dir/cold.us"
done

# Throughput: tput runs, P at a time.
declare -A rps
for p in 1 2 8; do
	t0=$(now_us)
	seq "$tput" | xargs -P "$p" -I{} "$ER" --template "$dir/tpl" -- true
	t1=$(now_us)
	rps[$p]=$(awk -v n="$tput" -v us=$((t1 - t0)) 'BEGIN {printf "%.2f", n / (us / 1e6)}')
done

# The floor: a container-style sandbox, every namespace unshared, no VM.
: >"$dir/bwrap.us"
for ((i = 0; i < runs; i++)); do
	t0=$(now_us)
	bwrap --unshare-all --ro-bind / / -- true
	t1=$(now_us)
	echo $((t1 - t0)) >>"$dir/bwrap.us"
done

tpl_ms=$(awk -v u="$(median "$dir/tpl.us")" 'BEGIN {printf "%.1f", u / 1000}')
cold_ms=$(awk -v u="$(median "$dir/cold.us")" 'BEGIN {printf "%.1f", u / 1000}')
bwrap_ms=$(awk -v u="$(median "$dir/bwrap.us")" 'BEGIN {printf "%.2f", u / 1000}')
ratio=$(awk -v a="$tpl_ms" -v b="$cold_ms" 'BEGIN {printf "%.3f", a / b}')
echo "BENCH template_ms=$tpl_ms cold_ms=$cold_ms ratio=$ratio restore_ms=$(median "$dir/ph.restore") connect_ms=$(median "$dir/ph.connect") command_ms=$(median "$dir/ph.command") teardown_ms=$(median "$dir/ph.teardown") rps1=${rps[1]} rps2=${rps[2]} rps8=${rps[8]} bwrap_ms=$bwrap_ms runs=$runs cold_runs=$cold tput_runs=$tput"
echo "ember-run --template -- true: median $tpl_ms ms end to end ($runs runs); cold ember-run -- true: $cold_ms ms ($cold runs); ratio $ratio (goal <= 0.1)"
echo "phases (median ms): restore $(median "$dir/ph.restore"), connect $(median "$dir/ph.connect"), command $(median "$dir/ph.command"), teardown $(median "$dir/ph.teardown")"
echo "runs/s: ${rps[1]} (1 at a time), ${rps[2]} (2), ${rps[8]} (8); bwrap --unshare-all -- true: $bwrap_ms ms"
