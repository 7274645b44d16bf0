#!/usr/bin/env bash
# Runs every suite (cmocka unit tests, then the bats end-to-end tests, then the unit tests
# and the direct-host bats suites again against the sanitized build, then each fuzz target
# for FUZZ_TEST_S seconds) and ends with one line "N passed, N failed[, N skipped]" counted
# over all of them.
#
# Each suite's TAP is checked against its own plan ("1..N") and its exit status: a suite
# that reports fewer results than it planned (a unit binary that exit()ed early, a killed
# bats), none at all, or exits non-zero without a failing test counts as one more failure,
# with the reason printed. A unit test source without its binary is a failure too.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
failures=()
failure_notes=() # per failed test: where it failed and the last lines it printed
durations=() # "SECONDS SUITE", for the slowest-suites list at the end
started=$(mktemp) # its time: the emulated hosts that froze during this run are newer
trap 'rm -f "$started"' EXIT

# fail SUITE WHY: one failure that no TAP line reported.
fail() {
	echo "not ok - $1: $2"
	failed=$((failed + 1))
	failures+=("$1: $2")
}

# note_failure TEST LINE...: keeps a failed test's diagnostics for the summary at the end,
# which is what a truncated CI log still shows: the first 4 lines (the command that failed)
# and the last 12 (what the test printed last).
note_failure() {
	local test=$1 n
	shift
	n=$#
	local note="-- $test"
	if [ "$n" -le 16 ]; then
		note+=$(printf '\n    %s' "$@")
	else
		note+=$(printf '\n    %s' "${@:1:4}")
		note+=$'\n    # ['"$((n - 16))"' lines left out]'
		note+=$(printf '\n    %s' "${@:n-11:12}")
	fi
	failure_notes+=("$note")
}

# count_tap SUITE: reads TAP on stdin, echoes it, and adds its results to the totals. The
# producer ends the stream with a line "@@exit-status N"; the suite must have printed one
# plan, that many results, and exited 0 unless one of them failed. A suite that runs whole
# in the emulated host starts over when that host froze or died under it (tests/vmhost/run
# says "running the command again"): only the results after that count.
count_tap() {
	local suite=$1 line plan="" results=0 suite_failed=0 rc="" notes=() noting=""
	# The totals as they were before this suite, for a start over.
	local passed0=$passed failed0=$failed skipped0=$skipped
	local n_failures=${#failures[@]} n_notes=${#failure_notes[@]}
	while IFS= read -r line; do
		case "$line" in
		"@@exit-status "*) rc=${line#@@exit-status }; continue ;;
		"tests/vmhost/run: running the command again"*)
			printf '%s\n' "$line"
			echo "# $suite: the results above do not count; the suite starts over"
			plan="" results=0 suite_failed=0 notes=() noting=""
			passed=$passed0 failed=$failed0 skipped=$skipped0
			failures=("${failures[@]:0:n_failures}")
			failure_notes=("${failure_notes[@]:0:n_notes}")
			continue
			;;
		esac
		printf '%s\n' "$line"
		if [ -n "$noting" ]; then
			if [[ "$line" == "#"* ]]; then
				notes+=("$line")
				continue
			fi
			note_failure "$noting" "${notes[@]}"
			noting="" notes=()
		fi
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
			noting="$suite: ${line#not ok }"
			;;
		"ok "*) passed=$((passed + 1)) results=$((results + 1)) ;;
		esac
	done
	[ -z "$noting" ] || note_failure "$noting" "${notes[@]}"
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

# A host without /dev/kvm (a VM without nested virtualization) cannot run the test guest:
# there each suite that boots it runs whole inside the emulated KVM host (tests/vmhost/run),
# whose /dev/kvm is standard KVM, with its scratch files on that host's tmpfs. The Linux
# suites go there test by test already, and format, layering and bats_lint need no KVM.
# EMBER_TESTS_IN_VMHOST=1 does the same on a host with /dev/kvm: a run as CI makes it.
in_l1=false
if [ -z "${EMBER_IN_VMHOST:-}" ] && { [ ! -c /dev/kvm ] || [ -n "${EMBER_TESTS_IN_VMHOST:-}" ]; }; then
	in_l1=true
	echo "# no /dev/kvm on this host: the suites that boot the test guest run inside the emulated KVM host"
fi
# run_bats FILE [ENV=VALUE...]: bats --tap FILE, here or in the emulated host.
run_bats() {
	local f=$1 name in_l1_suite
	shift
	name=$(basename "$f" .bats)
	case "$name" in
	format | layering | bats_lint | *_linux | linux_guest) in_l1_suite=false ;;
	*) in_l1_suite=$in_l1 ;;
	esac
	if $in_l1_suite; then
		# One CPU: with two, QEMU's multi-threaded TCG lost nested test guests by triple
		# fault (README "Known problems"); one was also faster (snapshot_diff 65 s, 84 s).
		EMBER_TEST_TMP=/tmp/ember-tests EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-2400} \
			tests/vmhost/run --smp 1 --mem 3072 -- env "$@" bats --tap "$f"
	else
		env "$@" bats --tap "$f"
	fi
}

echo "== end-to-end tests"
suites=(tests/*.bats)
if [ ! -e "${suites[0]}" ]; then
	fail bats "no tests/*.bats"
fi
for f in "${suites[@]}"; do
	[ -e "$f" ] || continue
	echo "# $f"
	start=$SECONDS
	count_tap "$(basename "$f")" < <(
		run_bats "$f" 2>&1
		echo "@@exit-status $?"
	)
	durations+=("$((SECONDS - start)) $f")
done

# The same unit tests and the suites that run ember on this host directly, against the build
# with ASan and UBSan (make BUILD=build/san SANITIZE=1 all unit-tests): a memory error, a
# leak at exit or undefined behaviour fails the test that provoked it.
echo "== sanitized build (ASan+UBSan): unit tests and direct-host suites"
SAN=build/san
SAN_SUITES=(api boot_direct blk_direct vsock_direct seccomp net_api vsock_api snapshot_direct
	entropy_direct entropy_api fc_compat serial snapshot_diff snapshot_uffd snapshot_devices
	balloon_api run_args)
echo "# not run sanitized: jailer.bats (the jail has no /proc, which the sanitizers' runtime"
echo "# needs), the *_linux and linux_guest suites (ember inside the emulated host: minutes"
echo "# each), format and layering (no ember binary)"
# UBSan's default is to report and carry on: here a report ends the program.
san_vars=("UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}")
if [ ! -x "$SAN/ember" ]; then
	fail sanitized "$SAN/ember was not built (run 'make BUILD=$SAN SANITIZE=1 all unit-tests')"
else
	# The unit tests find the guest kernels next to their build (build/guest).
	[ -e "$SAN/guest" ] || ln -s ../guest "$SAN/guest"
	for src in "${unit_sources[@]}"; do
		[ -e "$src" ] || continue
		name=$(basename "$src" .c)
		t=$SAN/tests/$name
		echo "# san $name"
		if [ ! -x "$t" ]; then
			fail "san $name" "$t was not built"
			continue
		fi
		count_tap "san $name" < <(
			env CMOCKA_MESSAGE_OUTPUT=TAP "${san_vars[@]}" "$t" 2>&1
			echo "@@exit-status $?"
		)
	done
	# Without /dev/kvm these suites would run in the emulated host, where ASan on top of TCG
	# makes ember slower than some tests' timing allows (a full run there failed
	# vsock_direct's credit and 1024-connection tests and seccomp's entropy rate window, all
	# three passing unsanitized in the same run).
	if $in_l1; then
		echo "# not run sanitized on this host: the ${#SAN_SUITES[@]} direct-host bats suites (no /dev/kvm here; the sanitized unit tests above did run)"
		SAN_SUITES=()
	fi
	for suite in "${SAN_SUITES[@]}"; do
		echo "# san tests/$suite.bats"
		start=$SECONDS
		count_tap "san $suite.bats" < <(
			run_bats "tests/$suite.bats" "EMBER_BUILD=$PWD/$SAN" "${san_vars[@]}" 2>&1
			echo "@@exit-status $?"
		)
		durations+=("$((SECONDS - start)) san tests/$suite.bats")
	done
fi

# Each libFuzzer target for a short fixed time, one result each; a crash fails it (its input
# is in build/fuzz/crashes/). Longer runs: make fuzz FUZZ_S=N.
echo "== fuzz targets (${FUZZ_TEST_S:-10} s each)"
count_tap fuzz < <(
	tests/fuzz/run.sh "${FUZZ_TEST_S:-10}" 2>&1
	echo "@@exit-status $?"
)

# Where the time went (CI's budget): the ten slowest bats suites.
echo "== slowest suites (s), of ${SECONDS} s in all"
printf '%s\n' "${durations[@]}" | sort -rn | head -10 | sed 's/^/  /'
# Emulated hosts that froze (TCG), after which tests/vmhost/run ran the command again in a
# fresh one: their directories keep the registers (README, "Known problems").
mapfile -t froze < <(find build/vmhost/runs -name 'stalled-registers.log*' -newer "$started" 2>/dev/null)
if [ ${#froze[@]} -gt 0 ]; then
	echo "== the emulated host froze ${#froze[@]} time(s); tests/vmhost/run ran the command again"
	printf '  %s\n' "${froze[@]}"
fi
if [ ${#failures[@]} -gt 0 ]; then
	echo "== failures"
	printf '  %s\n' "${failures[@]}"
	# At most 5 failures in detail: the totals must stay in the log's tail.
	if [ ${#failure_notes[@]} -gt 0 ]; then
		echo "== what the first failures printed"
		printf '%s\n' "${failure_notes[@]:0:5}"
	fi
fi
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
