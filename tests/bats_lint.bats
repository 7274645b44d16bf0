#!/usr/bin/env bats
# Every check in the bats suites can fail its test (tests/bats-lint.sh says why some cannot).

@test "no bats test has a '!' command or a '[ ] && [ ]' chain before its last line" {
	cd "$BATS_TEST_DIRNAME/.."
	run tests/bats-lint.sh tests/*.bats
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "the lint catches both forms and leaves a test's last line alone" {
	f="$BATS_TEST_TMPDIR/sample.bats"
	# Written line by line: bats would take a literal test line here for one of its own.
	t='@test'
	printf '%s\n' "$t \"sample\" {" '	! grep -q x /dev/null' '	[ 1 -eq 1 ] && [ 2 -eq 2 ]' \
		'	run true' '	[ "$status" -eq 0 ] && [ -z "$output" ]' '}' '' \
		"$t \"ends with a negation\" {" '	! grep -q x /dev/null' '}' >"$f"
	run "$BATS_TEST_DIRNAME/bats-lint.sh" "$f"
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$(wc -l <<<"$output")" -eq 2 ]
	[[ "$output" == *"sample.bats:2: "* ]]
	[[ "$output" == *"sample.bats:3: "* ]]
}
