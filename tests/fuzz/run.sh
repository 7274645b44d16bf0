#!/usr/bin/env bash
# Runs each libFuzzer target (build/fuzz/fuzz_*, 'make fuzz-build') for SECONDS and prints one
# TAP result per target: "ok" with its executions, rate and coverage, or "not ok" with where
# its crash input went. Usage: tests/fuzz/run.sh [SECONDS] [TARGET...] (default 10 s, all).
#
# Each run starts from the target's seed corpus (tests/fuzz/corpus/<target>/, which keeps the
# inputs of crashes once found: every run replays them first) plus what earlier runs found
# (build/fuzz/work/<target>/). Logs go to build/fuzz/logs/<target>.log, crash inputs to
# build/fuzz/crashes/. Niced: the fuzzers yield the CPU to everything else.
set -uo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-10}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for src in tests/fuzz/fuzz_*.c; do
		targets+=("$(basename "$src" .c)")
	done
fi

mkdir -p build/fuzz/logs build/fuzz/crashes
# A smaller quarantine than ASan's 256 MiB: freed memory is reused while its pages are still
# mapped, where the default let every input fault in fresh pages (fuzz_balloon: 1,240 ->
# 1,590 inputs/s). 16 MiB still holds many inputs' worth of freed blocks for use-after-free.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=16}
echo "1..${#targets[@]}"
n=0 failed=0
for t in "${targets[@]}"; do
	n=$((n + 1))
	# The length in the log's name: a long round by hand and make test's 10 s of the same
	# target at once wrote one file, and each read the other's numbers.
	bin=build/fuzz/$t log=build/fuzz/logs/$t.${seconds}s.log
	if [ ! -x "$bin" ]; then
		echo "not ok $n - $t: $bin was not built (run 'make fuzz-build')"
		failed=$((failed + 1))
		continue
	fi
	mkdir -p "build/fuzz/work/$t"
	# -max_len: the device targets carry up to 64 KiB of guest memory; 16 KiB is plenty.
	nice -n 19 "$bin" -max_total_time="$seconds" -max_len=16384 -print_final_stats=1 \
		-artifact_prefix="build/fuzz/crashes/$t-" "build/fuzz/work/$t" \
		"tests/fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
		echo "ok $n - $t: ${execs} execs in ${seconds} s (${rate}/s), cov ${cov:-?}"
	else
		crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
		echo "not ok $n - $t: status $rc after ${execs:-?} execs; input ${crash:-none}; log $log"
		grep -a -m3 -E 'ERROR: |SUMMARY: |^fuzz_' "$log" | sed 's/^/#   /'
		failed=$((failed + 1))
	fi
done
[ "$failed" -eq 0 ]
