#!/usr/bin/env bash
# Runs every suite (cmocka unit tests, then the bats end-to-end tests) and ends with one
# line "N passed, N failed[, N skipped]" counted over all of them.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
failures=()

# Reads TAP on stdin, echoes it, and adds its results to the totals.
count_tap() {
	local suite=$1 line
	while IFS= read -r line; do
		printf '%s\n' "$line"
		case "$line" in
		*"# skip"* | *"# SKIP"*) skipped=$((skipped + 1)) ;; # cmocka writes "not ok N # SKIP"
		"not ok"*) failed=$((failed + 1)); failures+=("$suite: ${line#not ok }") ;;
		"ok "*) passed=$((passed + 1)) ;;
		esac
	done
}

echo "== unit tests"
for t in build/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	echo "# $name"
	# A crashing test binary prints no "not ok" for what it did not reach: count it.
	count_tap "$name" < <(CMOCKA_MESSAGE_OUTPUT=TAP "$t" 2>&1; rc=$?; [ $rc -lt 128 ] || echo "not ok - $name crashed (status $rc)")
done

echo "== end-to-end tests"
for f in tests/*.bats; do
	echo "# $f"
	count_tap "$(basename "$f")" < <(bats --tap "$f" 2>&1)
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
