# Sourced by the benchmark scripts.

# stats_ms FILE: "median min max" in milliseconds from a file of microseconds, one a line.
stats_ms() {
	sort -n "$1" | awk '{v[NR]=$1} END {printf "%.2f %.2f %.2f\n", v[int((NR+1)/2)]/1000, v[1]/1000, v[NR]/1000}'
}
