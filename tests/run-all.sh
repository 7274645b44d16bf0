#!/usr/bin/env bash
# Runs every suite (cmocka unit tests, then the bats end-to-end tests) and ends with one
# line "N passed, N failed[, N skipped]" counted over all of them.
#
# Each suite's TAP is checked against its own plan ("1..N") and its exit status: a suite
# that reports fewer results than it planned (a unit binary that exit()ed early, a killed
# bats), none at all, or exits non-zero without a failing test counts as one more failure,
# with the reason printed. A unit test source without its binary is a failure too.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
failures=()

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
	count_tap "$(basename "$f")" < <(
		bats --tap "$f" 2>&1
		echo "@@exit-status $?"
	)
done

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
