#!/usr/bin/env bash
# ember start until its API socket accepts a connection, started directly and through
# ember-jailer, interleaved in the same run (default 30 of each). Prints the median and
# spread of both and what the jailer adds. Runs as root (the jailer needs it).
#
#   bench/jailer.sh [RUNS]
#
# ember is static: the jail needs nothing but the binary, which every timed jailer run copies
# in as part of its whole job: validation, copying the ember binary, rlimits, mount namespace and pivot_root, device nodes,
# dropping privileges, exec. No cgroups, network namespace or PID namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
make -s build/ember build/ember-jailer build/tests/helpers/start_to_socket >/dev/null
probe=build/tests/helpers/start_to_socket
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
base=$tmp/jails
jail=$base/ember/bench/root

direct() {
	"$probe" "$tmp/api.sock" -- build/ember --api-sock "$tmp/api.sock" 2>/dev/null
}
jailed() {
	"$probe" "$jail/api.sock" -- build/ember-jailer --id bench --exec-file build/ember \
		--uid 10000 --gid 10000 --chroot-base-dir "$base" -- --api-sock /api.sock 2>/dev/null
}

for _ in 1 2 3; do direct >/dev/null && jailed >/dev/null; done # warm caches
: >"$tmp/direct" && : >"$tmp/jailed"
for _ in $(seq "$runs"); do
	direct >>"$tmp/direct"
	jailed >>"$tmp/jailed"
done

. bench/lib.sh
read -r dmed dmin dmax < <(stats_ms "$tmp/direct")
read -r jmed jmin jmax < <(stats_ms "$tmp/jailed")
printf '%-48s %8s %8s %8s\n' "start until the API socket accepts, $runs runs" median min max
printf '%-48s %8s %8s %8s\n' "  ember directly (ms)" "$dmed" "$dmin" "$dmax"
printf '%-48s %8s %8s %8s\n' "  ember through ember-jailer (ms)" "$jmed" "$jmin" "$jmax"
printf '%-48s %8.2f\n' "  jailer overhead, median (ms)" "$(awk -v a="$jmed" -v b="$dmed" 'BEGIN { print a - b }')"
