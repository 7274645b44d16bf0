#!/usr/bin/env bash
# Runs every suite (cmocka unit tests, then the bats end-to-end tests, then the unit tests
# and the direct-host bats suites again against the sanitized build, then each fuzz target
# for FUZZ_TEST_S seconds) and ends with one line "N passed, N failed[, N skipped]" counted
# over all of them.
#
# Each suite's TAP is checked against its own plan ("1..N") and its exit status: a suite
# that reports fewer results than it planned (a unit binary that exit()ed early, a killed
# bats), none at all, or exits non-zero without a failing test counts as one more failure,
# with the reason printed. A unit test source without its binary is a failure too.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
failures=()
durations=() # "SECONDS SUITE", for the slowest-suites list at the end

# fail SUITE WHY: one failure that no TAP line reported.
fail() {
	echo "not ok - $1: $2"
	failed=$((failed + 1))
	failures+=("$1: $2")
}

# count_tap SUITE: reads TAP on stdin, echoes it, and adds its results to the totals. The
# producer ends the stream with a line "@@exit-status N"; the suite must have printed one
# plan, that many results, and exited 0 unless one of them failed.
count_tap() {
	local suite=$1 line plan="" results=0 suite_failed=0 rc=""
	while IFS= read -r line; do
		case "$line" in
		"@@exit-status "*) rc=${line#@@exit-status }; continue ;;
		esac
		printf '%s\n' "$line"
		if [[ -z "$plan" && "$line" =~ ^1\.\.([0-9]+)$ ]]; then
			plan=${BASH_REMATCH[1]}
			continue
		fi
		case "$line" in
		"ok "*"# skip"* | "ok "*"# SKIP"* | "not ok "*"# SKIP"*) # cmocka writes "not ok N # SKIP"
			skipped=$((skipped + 1)) results=$((results + 1))
			;;
		"not ok"*)
			failed=$((failed + 1)) results=$((results + 1)) suite_failed=$((suite_failed + 1))
			failures+=("$suite: ${line#not ok }")
			;;
		"ok "*) passed=$((passed + 1)) results=$((results + 1)) ;;
		esac
	done
	if [ -z "$rc" ]; then
		fail "$suite" "no exit status reported"
	elif [ "$rc" -ge 128 ]; then
		fail "$suite" "killed by signal $((rc - 128)) (status $rc) after $results results"
	elif [ -z "$plan" ]; then
		fail "$suite" "no TAP plan (1..N) in its output (status $rc)"
	elif [ "$results" -lt "$plan" ]; then
		fail "$suite" "$((plan - results)) of $plan planned tests never reported (status $rc)"
	elif [ "$results" -gt "$plan" ]; then
		fail "$suite" "$results results for a plan of $plan (status $rc)"
	elif [ "$rc" -ne 0 ] && [ "$suite_failed" -eq 0 ]; then
		fail "$suite" "exited with status $rc although every test passed"
	fi
}

echo "== unit tests"
unit_sources=(tests/unit/test_*.c)
if [ ! -e "${unit_sources[0]}" ]; then
	fail unit "no tests/unit/test_*.c"
fi
for src in "${unit_sources[@]}"; do
	[ -e "$src" ] || continue
	name=$(basename "$src" .c)
	t=build/tests/$name
	echo "# $name"
	if [ ! -x "$t" ]; then
		fail "$name" "$t was not built (run 'make unit-tests')"
		continue
	fi
	count_tap "$name" < <(
		CMOCKA_MESSAGE_OUTPUT=TAP "$t" 2>&1
		echo "@@exit-status $?"
	)
done

echo "== end-to-end tests"
suites=(tests/*.bats)
if [ ! -e "${suites[0]}" ]; then
	fail bats "no tests/*.bats"
fi
for f in "${suites[@]}"; do
	[ -e "$f" ] || continue
	echo "# $f"
	start=$SECONDS
	count_tap "$(basename "$f")" < <(
		bats --tap "$f" 2>&1
		echo "@@exit-status $?"
	)
	durations+=("$((SECONDS - start)) $f")
done

# The same unit tests and the suites that run ember on this host directly, against the build
# with ASan and UBSan (make BUILD=build/san SANITIZE=1 all unit-tests): a memory error, a
# leak at exit or undefined behaviour fails the test that provoked it.
echo "== sanitized build (ASan+UBSan): unit tests and direct-host suites"
SAN=build/san
SAN_SUITES=(api boot_direct blk_direct vsock_direct seccomp net_api vsock_api snapshot_direct
	entropy_direct entropy_api fc_compat serial snapshot_diff snapshot_uffd snapshot_devices
	balloon_api run_args)
echo "# not run sanitized: jailer.bats (the jail has no /proc, which the sanitizers' runtime"
echo "# needs), the *_linux and linux_guest suites (ember inside the emulated host: minutes"
echo "# each), format and layering (no ember binary)"
# UBSan's default is to report and carry on: here a report ends the program.
san_env=(env "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}")
if [ ! -x "$SAN/ember" ]; then
	fail sanitized "$SAN/ember was not built (run 'make BUILD=$SAN SANITIZE=1 all unit-tests')"
else
	# The unit tests find the guest kernels next to their build (build/guest).
	[ -e "$SAN/guest" ] || ln -s ../guest "$SAN/guest"
	for src in "${unit_sources[@]}"; do
		[ -e "$src" ] || continue
		name=$(basename "$src" .c)
		t=$SAN/tests/$name
		echo "# san $name"
		if [ ! -x "$t" ]; then
			fail "san $name" "$t was not built"
			continue
		fi
		count_tap "san $name" < <(
			CMOCKA_MESSAGE_OUTPUT=TAP "${san_env[@]}" "$t" 2>&1
			echo "@@exit-status $?"
		)
	done
	for suite in "${SAN_SUITES[@]}"; do
		echo "# san tests/$suite.bats"
		start=$SECONDS
		count_tap "san $suite.bats" < <(
			EMBER_BUILD=$PWD/$SAN "${san_env[@]}" bats --tap "tests/$suite.bats" 2>&1
			echo "@@exit-status $?"
		)
		durations+=("$((SECONDS - start)) san tests/$suite.bats")
	done
fi

# Each libFuzzer target for a short fixed time, one result each; a crash fails it (its input
# is in build/fuzz/crashes/). Longer runs: make fuzz FUZZ_S=N.
echo "== fuzz targets (${FUZZ_TEST_S:-10} s each)"
count_tap fuzz < <(
	tests/fuzz/run.sh "${FUZZ_TEST_S:-10}" 2>&1
	echo "@@exit-status $?"
)

# Where the time went (CI's budget): the ten slowest bats suites.
echo "== slowest suites (s), of ${SECONDS} s in all"
printf '%s\n' "${durations[@]}" | sort -rn | head -10 | sed 's/^/  /'
if [ ${#failures[@]} -gt 0 ]; then
	echo "== failures"
	printf '  %s\n' "${failures[@]}"
fi
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
