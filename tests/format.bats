#!/usr/bin/env bats
# The C sources follow .clang-format (kernel-like tabs, 100 columns).

@test "every C file is clang-formatted" {
	cd "$BATS_TEST_DIRNAME/.."
	command -v clang-format >/dev/null || { echo "clang-format missing: run make deps"; false; }
	bad=()
	for f in $(git ls-files '*.c' '*.h'); do
		clang-format "$f" | cmp -s - "$f" || bad+=("$f")
	done
	if [ ${#bad[@]} -gt 0 ]; then
		printf 'not formatted (run clang-format -i on them): %s\n' "${bad[@]}"
		false
	fi
}
