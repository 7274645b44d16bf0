#!/usr/bin/env bash
# bats-lint.sh FILE...: finds checks that cannot fail a bats test. bats runs a test under
# `set -e`, which ignores a `!` command and every part of an `a && b` list but the last, so
# such a line fails the test only when it is the test's last line. Prints FILE:LINE: TEXT
# for each `! cmd` line and each `[ ... ] && [ ... ]` line that is not a test's last line;
# exits 1 if there was one.
status=0
for f in "$@"; do
	awk -v f="$f" '
		{ line[NR] = $0 }
		END {
			for (i = 1; i <= NR; i++) {
				if (line[i] ~ /^@test/) intest = 1
				if (line[i] ~ /^}/) intest = 0
				if (!intest) continue
				bad = line[i] ~ /^[ \t]*! / || line[i] ~ /^[ \t]*\[\[? .* \]\]? && \[/
				if (!bad) continue
				j = i + 1
				while (j <= NR && line[j] ~ /^[ \t]*(#.*)?$/) j++
				if (line[j] !~ /^}/) { print f ":" i ": " line[i]; found = 1 }
			}
			exit found
		}' "$f" || status=1
done
exit $status
