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

# --- virtio-blk benchmarks (bench/blk.sh, bench/blk-profile.sh) ---

# The ext4 placement's disk: a file of this machine, attached to the emulated host as its
# virtio disk. Made afresh here, where mkfs is quick; initialised up front, so that no
# lazy-init thread writes while the VMMs are measured.
BLK_DISK=build/bench/blk-disk.img
blk_make_disk() {
	mkdir -p build/bench
	rm -f "$BLK_DISK"
	truncate -s 1G "$BLK_DISK"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$BLK_DISK"
}

# blk_mount_ext4 MNT: inside the emulated host, that disk (/dev/vda) mounted at MNT.
blk_mount_ext4() {
	[[ -b /dev/vda ]] || { echo "blk: no /dev/vda in the emulated host" >&2; exit 1; }
	mkdir -p "$1"
	mountpoint -q "$1" || mount -t ext4 /dev/vda "$1"
}

# blk_write_image IMG: 256 MiB written out (not sparse), so that the VMMs read real pages,
# and on disk before the first boot.
blk_write_image() {
	dd if=/dev/zero of="$1" bs=1M count=256 status=none
	sync
}

# The blk bench guest (bench/blk-image.sh's initramfs) as both VMMs boot it.
BLK_KERNEL=build/guest/vmlinux
BLK_INITRD=build/bench/initramfs-blk.cpio.gz
BLK_ARGS="console=ttyS0 reboot=k panic=1 quiet i8042.noaux i8042.nomux i8042.dumbkbd"

# blk_ember_config ENGINE IMG BENCH_ARGS: ember's config file for that guest (1 vCPU,
# 256 MiB) with IMG as its data drive; the guest runs /blk-bench.sh BENCH_ARGS.
blk_ember_config() {
	cat <<JSON
{
  "boot-source": { "kernel_image_path": "$BLK_KERNEL", "initrd_path": "$BLK_INITRD",
                   "boot_args": "$BLK_ARGS -- /blk-bench.sh $3" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 256 },
  "drives": [ { "drive_id": "data", "path_on_host": "$2", "is_root_device": false,
                "io_engine": "$1" } ]
}
JSON
}
