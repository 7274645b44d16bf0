# Sourced by the benchmark scripts.

# stats_ms FILE: "median min max" in milliseconds from a file of microseconds, one a line.
stats_ms() {
	sort -n "$1" | awk '{v[NR]=$1} END {printf "%.2f %.2f %.2f\n", v[int((NR+1)/2)]/1000, v[1]/1000, v[NR]/1000}'
}

# interleaved_medians L1_SCRIPT RUNS MIB: RUNS rounds of "L1_SCRIPT DIR bench-ember MIB" then
# bench-qemu (the emulated-host scripts under tests/), each printing one "BENCH vmm=V k=v ..."
# line; prints those lines, then per VMM the median of every key (empty values left out).
interleaved_medians() {
	local script=$1 runs=$2 mib=$3 i vmm line results=()
	local dir=$PWD/build/bench-$(basename "$script" .sh).$$
	for ((i = 1; i <= runs; i++)); do
		for vmm in ember qemu; do
			rm -rf "$dir" && mkdir -p "$dir"
			line=$("$script" "$dir" "bench-$vmm" "$mib" 2>/dev/null | grep '^BENCH' || true)
			echo "${line:-BENCH vmm=$vmm failed}"
			results+=("$line")
		done
	done
	rm -rf "$dir"
	printf '%s\n' "${results[@]}" | awk '
	function median(a, n,   i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	/^BENCH/ {
		split($2, v, "="); vmm = v[2]
		for (f = 3; f <= NF; f++) {
			split($f, kv, "=")
			if (kv[2] == "") continue
			k = vmm SUBSEP kv[1]; cnt[k]++; val[k, cnt[k]] = kv[2]; keys[kv[1]] = 1
		}
		vmms[vmm] = 1
	}
	END {
		for (vmm in vmms) {
			line = "median " vmm ":"
			for (key in keys) {
				k = vmm SUBSEP key; n = cnt[k]
				for (i = 1; i <= n; i++) a[i] = val[k, i]
				line = line " " key "=" (n ? median(a, n) : "n/a")
			}
			print line
		}
	}'
}
