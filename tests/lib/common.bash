# Shared by the bats suites: paths, config writers and the ember runner.
# "run !" and "run -N" need bats 1.5.
bats_require_minimum_version 1.5.0
EMBER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# EMBER_BUILD: another build of ember to test, e.g. the sanitized one (build/san).
EMBER="${EMBER_BUILD:-$EMBER_ROOT/build}/ember"
TEST_GUEST="$EMBER_ROOT/build/tests/guest.elf"
# Prefix for an ember run under strace: LeakSanitizer (a sanitized build) cannot work under
# ptrace and would end ember with an error.
UNDER_PTRACE=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
GUEST_VMLINUX="$EMBER_ROOT/build/guest/vmlinux"
GUEST_BZIMAGE="$EMBER_ROOT/build/guest/bzImage"
GUEST_INITRAMFS="$EMBER_ROOT/build/guest/initramfs.cpio.gz"
# Linux guests read their console on ttyS0; the rest is Firecracker's usual set.
LINUX_ARGS="console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet"

# A scratch directory inside the repository, so that the emulated KVM host (which sees
# the repository at the same path) can read the files written here. EMBER_TEST_TMP puts it
# elsewhere: a suite run whole inside the emulated host (run-all.sh on a host without
# /dev/kvm) keeps it on that host's tmpfs, where Unix sockets can be bound (not on 9p).
scratch_dir() {
	local d="${EMBER_TEST_TMP:-$EMBER_ROOT/build/test-tmp}/${BATS_TEST_FILENAME##*/}-$BATS_TEST_NUMBER-$$"
	rm -rf "$d" && mkdir -p "$d" && echo "$d"
}

# Inside the emulated KVM host (QEMU TCG) the CPU has no constant TSC, and its KVM gives VMs
# made at different times different TSC rates (1.05 GHz, then 2.10 GHz, in one run) and
# kvmclocks that do not carry across a load: tests of TSC rates and clocks across snapshots
# say nothing there. They run on a host whose /dev/kvm runs the test guest directly.
skip_without_constant_tsc() {
	if [ -n "${EMBER_IN_VMHOST:-}" ]; then
		skip "the emulated KVM host has no constant TSC (TCG): its VMs' TSC rates and clocks move between VMs"
	fi
}

# write_config FILE KERNEL INITRD|"" BOOT_ARGS VCPUS MEM_MIB
write_config() {
	local file=$1 kernel=$2 initrd=$3 args=$4 vcpus=$5 mem=$6 initrd_json=""
	[ -n "$initrd" ] && initrd_json=", \"initrd_path\": \"$initrd\""
	cat >"$file" <<JSON
{
  "boot-source": { "kernel_image_path": "$kernel", "boot_args": "$args"$initrd_json },
  "machine-config": { "vcpu_count": $vcpus, "mem_size_mib": $mem }
}
JSON
}

# write_drives_config FILE KERNEL BOOT_ARGS MEM_MIB [DRIVE_JSON...]: one vCPU, no initrd,
# the given drives (JSON objects) in order.
write_drives_config() {
	local file=$1 kernel=$2 args=$3 mem=$4
	shift 4
	local drives
	drives=$(
		IFS=,
		echo "$*"
	)
	cat >"$file" <<JSON
{
  "boot-source": { "kernel_image_path": "$kernel", "boot_args": "$args" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": $mem },
  "drives": [ $drives ]
}
JSON
}

# write_device_config FILE BOOT_ARGS KEY JSON: the test guest, one vCPU, 64 MiB, and the
# config file's KEY (a device object such as "vsock" or "entropy") set to JSON.
write_device_config() {
	cat >"$1" <<JSON
{
  "boot-source": { "kernel_image_path": "$TEST_GUEST", "boot_args": "$2" },
  "machine-config": { "vcpu_count": 1, "mem_size_mib": 64 },
  "$3": $4
}
JSON
}

# --- the HTTP API ---

# api_start [ember args...]: starts ember with an API socket in $D; sets EMBER_PID, SOCK.
api_start() {
	api_launch "$EMBER" "$@"
}

# api_launch CMD...: CMD (ember, maybe behind a prefix such as ip netns exec) with
# --api-sock $D/api.sock; returns once the socket is there. ember puts it there only once it
# listens, so a file there is one that accepts, unless a killed ember left it: that one goes
# first (API_KEEP_STALE_SOCKET=1 keeps it, for the test of ember replacing it; a request
# right after this would meet it and fail with curl's 7).
api_launch() {
	SOCK="$D/api.sock"
	[ -n "${API_KEEP_STALE_SOCKET:-}" ] || rm -f "$SOCK"
	"$@" --api-sock "$SOCK" >"$D/ember.out" 2>&1 &
	EMBER_PID=$!
	for _ in $(seq 200); do [ -S "$SOCK" ] && return 0; sleep 0.01; done
	echo "API socket never appeared" >&2
	cat "$D/ember.out" >&2
	return 1
}

# console_text FILE: FILE (ember's stdout and stderr together) with ember's log records cut
# out. The two streams share the file, so a record ("...Z [id] [Info] ...") written while the
# guest prints lands in the middle of the guest's line: CI once saw "hello from<record> the
# guest". Grep the guest's words in this, not in the file.
console_text() {
	perl -0pe 's/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[[^\]\n]*\] \[[^\]\n]*\][^\n]*\n//g' "$1"
}

api_stop() {
	[ -n "${EMBER_PID:-}" ] || return 0
	# An ember that ended before the test was done says how (a signal: a crash, a seccomp
	# kill), in the output of a failed test.
	local state st=0
	state=$(cut -d' ' -f3 "/proc/$EMBER_PID/stat" 2>/dev/null) || state=gone
	if [ "$state" = Z ] || [ "$state" = gone ]; then
		wait "$EMBER_PID" 2>/dev/null || st=$?
		echo "ember (pid $EMBER_PID) had already ended with status $st; its last output:" >&2
		tail -n 15 "$D/ember.out" 2>/dev/null | sed 's/^/  | /' >&2
	fi
	kill -TERM "$EMBER_PID" 2>/dev/null || true
	wait "$EMBER_PID" 2>/dev/null || true
	EMBER_PID=
	sanitizer_quiet "$D/ember.out"
}

# sanitizer_quiet FILE...: fails, showing the report, if a sanitizer (a sanitized build's
# ASan, LeakSanitizer at exit, UBSan) wrote one into FILE: a leak found as ember exits
# otherwise changes nothing a test looks at.
sanitizer_quiet() {
	local f
	for f in "$@"; do
		[ -f "$f" ] || continue
		if grep -aqE 'ERROR: (Address|Leak)Sanitizer|runtime error: ' "$f"; then
			echo "a sanitizer reported in $f:"
			grep -aE -A30 'ERROR: (Address|Leak)Sanitizer|runtime error: ' "$f" | head -60
			return 1
		fi
	done
}

# api METHOD PATH [BODY]: prints the body, then the status on the last line; curl gives up
# after API_MAX_TIME seconds (10).
api() {
	local method=$1 path=$2 body=${3-}
	if [ $# -ge 3 ]; then
		curl -s --max-time "${API_MAX_TIME:-10}" --unix-socket "$SOCK" -X "$method" -H 'Content-Type: application/json' \
			-d "$body" -w '\n%{http_code}' "http://localhost$path"
	else
		curl -s --max-time "${API_MAX_TIME:-10}" --unix-socket "$SOCK" -X "$method" -w '\n%{http_code}' "http://localhost$path"
	fi
}

# expect_api STATUS METHOD PATH [BODY] [PATTERN]: the reply has STATUS (and PATTERN).
expect_api() {
	local want=$1 method=$2 path=$3 body=${4-} pattern=${5-} out
	if [ $# -ge 4 ]; then out=$(api "$method" "$path" "$body"); else out=$(api "$method" "$path"); fi
	local got=${out##*$'\n'}
	if [ "$got" != "$want" ] || { [ -n "$pattern" ] && [[ "$out" != *"$pattern"* ]]; }; then
		echo "$method $path ${body:+($body)}: expected $want${pattern:+ with '$pattern'}, got: $out" >&2
		return 1
	fi
}

# require_linux_host FILE...: setup_file of the suites that boot Linux. The files must exist
# and, where Linux runs in the emulated KVM host, that host's kernel too; fails saying what
# to build.
require_linux_host() {
	local f
	for f in "$@"; do
		[ -f "$f" ] || { echo "$f missing: run 'make all kernel rootfs'" >&2; return 1; }
	done
	if [ "$(ember_host_kind)" = vmhost ] && [ ! -f "$EMBER_ROOT/build/vmhost/bzImage" ]; then
		echo "build/vmhost/bzImage missing: run 'make vmhost-kernel'" >&2
		return 1
	fi
}

# unechoed TEXT: TEXT with '' after its first character, for a guest command on the kernel
# command line: the guest's shell prints TEXT, while the command line (which the kernel may
# echo to the console) holds only the split form, so the echo cannot pass for the output.
unechoed() {
	printf "%s''%s" "${1:0:1}" "${1:1}"
}

# show_output: $output, then again the KEY=VALUE lines the test reads (HOST-..., GUEST-...)
# and the lines that say what went wrong, the last 10 of them: a failed test's last lines
# are what a truncated log (run-all.sh's summary) keeps.
show_output() {
	echo "$output"
	echo "-- the result lines, last 10:"
	grep -aE '^[A-Z][A-Z0-9]*-[A-Z0-9-]+(=| )|BAD|[Tt]imed? ?out|refused|failed|[Pp]anic|Oops|BUG|triple fault|shut down' <<<"$output" |
		grep -v ': try [0-9]* of [0-9]* failed:' | tr -d '\r' | tail -10
}

# value KEY: the value of the last KEY=VALUE line in $output.
value() {
	sed -n "s/^$1=//p" <<<"$output" | tr -d '\r' | tail -1
}

# boot_source [BOOT_ARGS]: the test guest (halted unless told otherwise), one vCPU, 64 MiB,
# through the API.
boot_source() {
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"${1:-halt}\"}"
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
}
