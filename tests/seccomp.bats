#!/usr/bin/env bats
# The per-thread seccomp filters: every thread of a running ember is filtered, and each
# thread's compiled filter (ember --dump-seccomp THREAD) lets its own calls through and
# kills the process on anything else. The trap handler (log line, metrics, exit 148) is
# covered by tests/unit/test_seccomp.c.

load lib/common

TRY="$EMBER_ROOT/build/tests/helpers/seccomp_try"

setup() {
	D=$(scratch_dir)
	EMBER_PID=
	ulimit -c 0 # the forbidden calls below end in SIGSYS, which would dump core
}

teardown() {
	api_stop
	rm -rf "$D"
}

# True when ember was built with the sanitizers, whose runtime needs more calls.
sanitizer_build() {
	ldd "$EMBER" | grep -q libasan
}

# dump THREAD: the thread's filter in $D/THREAD.bpf.
dump() {
	"$EMBER" --dump-seccomp "$1" >"$D/$1.bpf"
}

# allowed THREAD CALL...: each call returns under THREAD's filter.
allowed() {
	local thread=$1
	shift
	for call in "$@"; do
		run "$TRY" "$D/$thread.bpf" "$call"
		if [ "$status" -ne 0 ] || [[ "$output" != "$call: returned"* ]]; then
			echo "$thread: $call should be allowed; status $status: $output"
			return 1
		fi
	done
}

# forbidden THREAD CALL...: each call kills the helper with SIGSYS (status 128+31).
forbidden() {
	local thread=$1
	shift
	for call in "$@"; do
		run "$TRY" "$D/$thread.bpf" "$call"
		if [ "$status" -ne 159 ]; then
			echo "$thread: $call should be killed by SIGSYS; status $status: $output"
			return 1
		fi
	done
}

# thread_status PID: one line per thread: "<tid> Seccomp=<mode> Filters=<n>".
thread_status() {
	local t
	for t in /proc/"$1"/task/*; do
		echo "${t##*/} Seccomp=$(awk '$1 == "Seccomp:" { print $2 }' "$t/status")" \
			"Filters=$(awk '$1 == "Seccomp_filters:" { print $2 }' "$t/status")"
	done
}

wait_for_line() { # wait_for_line FILE TEXT
	for _ in $(seq 200); do grep -q "$2" "$1" && return 0; sleep 0.02; done
	echo "'$2' never appeared in $1:"
	cat "$1"
	return 1
}

@test "--dump-seccomp writes each thread's BPF program; an unknown thread is refused" {
	for thread in vmm vcpu api; do
		dump "$thread"
		size=$(stat -c %s "$D/$thread.bpf")
		echo "$thread: $size bytes"
		[ $((size % 8)) -eq 0 ]   # struct sock_filter is 8 bytes
		[ "$size" -ge $((16 * 8)) ] # a real filter, not an empty or stub program
		# It starts by checking the architecture: load seccomp_data.arch (offset 4), then
		# compare with AUDIT_ARCH_X86_64.
		first=$(od -An -tx4 -N16 "$D/$thread.bpf" | tr -s ' ')
		echo "$thread: first two instructions:$first"
		[[ "$first" == " 00000020 00000004 "*" c000003e" ]]
		# And the kernel takes it: a call the thread makes passes, exec kills.
		allowed "$thread" getpid
		forbidden "$thread" execve
	done
	run "$EMBER" --dump-seccomp hypervisor
	[ "$status" -eq 1 ]
	[[ "$output" == *"--dump-seccomp hypervisor: expected vmm, vcpu or api"* ]]
}

@test "vCPU filter: KVM_RUN, writes and memory pass; other ioctls, sockets and exec are killed" {
	dump vcpu
	allowed vcpu write getpid mmap-rw ioctl-kvm-run
	forbidden vcpu ioctl-kvm-create-vm ioctl-kvm-get-clock ioctl-kvm-set-user-memory-region \
		socket-unix socket-inet accept4 execve mount tgkill-kick unlink userfaultfd
	# Interrupts go in through irqfds, never by ioctl.
	forbidden vcpu ioctl-kvm-irq-line ioctl-kvm-signal-msi ioctl-kvm-interrupt
	if ! sanitizer_build; then
		forbidden vcpu mmap-exec mprotect-exec fork ptrace
	fi
	# Opening a file fails instead of killing: glibc opens some lazily, and copes.
	run "$TRY" "$D/vcpu.bpf" openat
	[ "$status" -eq 0 ]
	[[ "$output" == *"returned -1 (Permission denied)"* ]]
}

@test "VMM filter: the event loop's calls pass; exec, foreign sockets and VM setup are killed" {
	dump vmm
	allowed vmm write getpid mmap-rw socket-unix accept4 openat unlink tgkill-kick \
		ioctl-kvm-get-clock ioctl-kvm-get-regs mincore ftruncate recvfrom
	# A snapshot create reads vCPU state; only a load (before the filter) sets it, and makes
	# the Uffd backend's userfaultfd.
	forbidden vmm socket-inet socket-netlink execve mount ioctl-kvm-run ioctl-kvm-create-vm \
		ioctl-kvm-set-user-memory-region tgkill-term ioctl-kvm-signal-msi ioctl-kvm-interrupt \
		ioctl-kvm-set-regs ioctl-kvm-set-msrs userfaultfd
	if ! sanitizer_build; then
		forbidden vmm mmap-exec mprotect-exec fork ptrace kill-parent
	fi
}

@test "API filter: accepting and answering pass; sockets, KVM and exec are killed" {
	dump api
	allowed api write getpid mmap-rw accept4
	forbidden api socket-unix socket-inet ioctl-kvm-run ioctl-kvm-get-clock execve mount \
		tgkill-kick unlink ioctl-kvm-irq-line ioctl-kvm-interrupt userfaultfd
	if ! sanitizer_build; then
		forbidden api mmap-exec fork ptrace
	fi
}

@test "every thread of a running ember (--no-api) has exactly one filter" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "halt" 2 64
	"$EMBER" --no-api --config-file "$D/vm.json" >"$D/out" 2>&1 &
	EMBER_PID=$!
	wait_for_line "$D/out" "halting"
	thread_status "$EMBER_PID" | tee "$D/threads"
	[ "$(wc -l <"$D/threads")" -ge 3 ] # VMM and two vCPUs
	run ! grep -v "Seccomp=2 Filters=1" "$D/threads"
}

@test "with the API, the API thread is filtered too, before and after InstanceStart" {
	api_start
	# Before the boot only the API thread has a filter: the VMM thread still configures.
	for _ in $(seq 100); do
		thread_status "$EMBER_PID" >"$D/before"
		grep -q "Seccomp=2" "$D/before" && break
		sleep 0.01
	done
	cat "$D/before"
	grep -q "^$EMBER_PID Seccomp=0" "$D/before"
	[ "$(grep -c "Seccomp=2 Filters=1" "$D/before")" -eq 1 ]
	expect_api 204 PUT /boot-source "{\"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"halt\"}"
	expect_api 204 PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 64}'
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	wait_for_line "$D/ember.out" "halting"
	expect_api 200 GET / "" "Running"
	thread_status "$EMBER_PID" | tee "$D/after"
	[ "$(wc -l <"$D/after")" -ge 4 ] # VMM, API and two vCPUs
	run ! grep -v "Seccomp=2 Filters=1" "$D/after"
	# Pausing and resuming (KVM_GET_CLOCK, KVM_SET_CLOCK, vCPU kicks) is within the filters.
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 204 PATCH /vm '{"state": "Resumed"}'
	expect_api 200 GET / "" "Running"
}

@test "--no-seccomp leaves every thread unfiltered" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "halt" 1 64
	"$EMBER" --no-api --config-file "$D/vm.json" --no-seccomp >"$D/out" 2>&1 &
	EMBER_PID=$!
	wait_for_line "$D/out" "halting"
	thread_status "$EMBER_PID" | tee "$D/threads"
	run ! grep -v "Seccomp=0" "$D/threads"
}

@test "the filters let a whole run through: boot, console, boot timer, reset, exit 0" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "console=ttyS0" 2 128
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json" --boot-timer --level Debug
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from the guest"* ]]
	[[ "$output" != *"bad syscall"* ]]
}
