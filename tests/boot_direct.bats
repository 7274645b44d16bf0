#!/usr/bin/env bats
# The freestanding test guest on this host's /dev/kvm (PVM or hardware), and every
# promised start-up error. Fast: each case is one short-lived ember process.

load lib/common

setup() {
	D=$(scratch_dir)
}

teardown() {
	rm -rf "$D"
}

@test "test guest boots, prints on the UART, logs Guest-boot-time and ember exits 0" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "console=ttyS0" 1 128
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json" --boot-timer
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ember test guest: hello from the guest"* ]]
	[[ "$output" =~ Guest-boot-time\ =\ +[0-9]+\ us ]]
}

@test "without --boot-timer no Guest-boot-time line is logged" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "" 1 64
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from the guest"* ]]
	[[ "$output" != *"Guest-boot-time"* ]]
}

@test "test guest starts all 4 vCPUs and uses memory above the 3 GiB hole" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "smp high-mem" 4 4096
	run timeout 30 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 0 ]
	# The MP table announces 4 processors, and INIT-SIPI-SIPI brings each AP to 64-bit code.
	[[ "$output" == *"smp: mptable=4 cpus=4 apic_ids=0,1,2,3"* ]]
	# e820: RAM up to the 3 GiB gap, the last 1 GiB from 4 GiB; the guest wrote and read
	# back every 2 MiB of that and its last 8 bytes.
	[[ "$output" == *"high-mem: e820 0x0-0x9fc00:ram 0x100000-0xc0000000:ram 0x100000000-0x140000000:ram checked=0x100000000-0x140000000 ok=1"* ]]
}

# cpuid_line APIC: the test guest's "cpuid: apic=APIC ..." line from $output.
cpuid_line() {
	grep -o "cpuid: apic=$1 .*" <<<"$output" | tr -d '\r'
}

@test "CPUID topology on every vCPU: APIC IDs in order; with smt two threads per core, without one" {
	for smt in false true; do
		write_config "$D/vm.json" "$TEST_GUEST" "" "smp" 4 64
		sed -i "s/\"mem_size_mib\": 64/&, \"smt\": $smt/" "$D/vm.json"
		run timeout 30 "$EMBER" --no-api --config-file "$D/vm.json"
		echo "$output"
		[ "$status" -eq 0 ]
		[[ "$output" == *"smp: mptable=4 cpus=4 apic_ids=0,1,2,3"* ]]
		local threads=1
		[ "$smt" = false ] || threads=2
		for cpu in 0 1 2 3; do
			line=$(cpuid_line $cpu)
			# Subleaf 1 of 0xb, the core level, counts the package's logical CPUs (this host
			# lists only subleaf 0: ember adds it, or the guest read 0).
			[[ "$line" == *" leaf1_apic=$cpu x2apic=$cpu threads_per_core=$threads cpus=4 "* ]]
			# AMD's leaf 0x8000001e, where the host has it (amd_threads=0: it has not):
			# the core is the APIC ID over the threads per core.
			if [[ "$line" != *" amd_threads=0" ]]; then
				[[ "$line" == *" amd_core=$((cpu / threads)) amd_threads=$threads" ]]
			fi
		done
	done
}

@test "one vCPU: the MP table has one processor and no AP starts" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "smp" 1 64
	run timeout 30 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"smp: mptable=1 cpus=1 apic_ids=0"* ]]
}

# stop_with SIGNAL STATUS: a halted guest keeps ember running until SIGNAL, which ends it
# with STATUS (128 + the signal's number).
stop_with() {
	write_config "$D/vm.json" "$TEST_GUEST" "" "halt" 1 64
	"$EMBER" --no-api --config-file "$D/vm.json" >"$D/out" 2>&1 &
	pid=$!
	for _ in $(seq 100); do grep -q "halting" "$D/out" && break; sleep 0.05; done
	grep -q "halting" "$D/out"
	sleep 0.2
	kill -0 "$pid" # still running
	kill -"$1" "$pid"
	status=0
	wait "$pid" || status=$?
	cat "$D/out"
	echo "status $status"
	[ "$status" -eq "$2" ]
	grep -q "received signal $(($2 - 128)), stopping the VM" "$D/out"
}

@test "halted guest keeps ember running until SIGTERM, which exits 143" {
	stop_with TERM 143
}

@test "SIGINT exits 130 and SIGHUP exits 129" {
	stop_with INT 130
	stop_with HUP 129
}

@test "a guest triple fault ends ember with status 0" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "triple-fault" 1 64
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ember test guest: triple fault next"* ]]
	[[ "$output" == *"vCPU 0: guest shut down (triple fault)"* ]]
	# Where it was, for a crashed guest's symbols: the guest had loaded an empty IDT at 0.
	[[ "$output" =~ "vCPU 0: at the triple fault rip 0x"[0-9a-f]+" rsp ".*" idt 0x0 gdt " ]]
	[[ "$output" != *"requested a reset"* ]]
}

@test "the test guest's trap-report IDT names an exception that would have been a silent triple fault" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "trap-report ud2" 1 64
	run timeout 5 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 124 ] # the guest reported and halted: ember runs on until the timeout
	[[ "$output" == *"ember test guest: ud2 next"* ]]
	# #UD pushes no error code: the frame's first word is the RIP of the ud2.
	[[ "$output" =~ "cpu: trap vector=6 cr2=0x"[0-9a-f]+" frame=0x"[0-9a-f]+",0x" ]]
	[[ "$output" != *"triple fault"* ]]
}

@test "a vCPU that KVM cannot run (code fetched from the MMIO gap) ends ember with status 3" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "exec-mmio" 1 64
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	echo "$output"
	[ "$status" -eq 3 ]
	[[ "$output" == *"jumping into the MMIO gap"* ]]
	[[ "$output" == *"vCPU 0: KVM internal error"*"at rip 0xd0000000"* ]]
}

# uart_echoes WORD LINE: the test guest (WORD: uart-echo or uart-echo-late) reads LINE from
# ember's stdin through the UART and prints it back; ember exits 0.
uart_echoes() {
	write_config "$D/vm.json" "$TEST_GUEST" "" "$1" 1 64
	run timeout 30 "$EMBER" --no-api --config-file "$D/vm.json" < <(printf '%s\n' "$2")
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ember test guest: uart got '$2'"* ]]
}

@test "ember's stdin reaches the guest's UART receiver" {
	# Built here, so that it cannot come from anywhere but stdin.
	uart_echoes uart-echo "from-stdin-$$-$RANDOM"
}

@test "console input beyond the 64-byte FIFO waits in stdin and resumes when the guest reads" {
	# The vCPU thread used to resume stdin with epoll_ctl itself: its seccomp filter ended
	# ember with 148.
	uart_echoes uart-echo-late "long-$RANDOM-$(printf 'x%.0s' $(seq 66))"
}

@test "without boot_args the guest gets Firecracker's default command line" {
	fc_default="reboot=k panic=1 pci=off nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"
	echo "{ \"boot-source\": { \"kernel_image_path\": \"$TEST_GUEST\" } }" >"$D/vm.json"
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json" --level Debug
	echo "$output"
	[ "$status" -eq 0 ]
	# The loader logs the line it wrote into the zero page: exactly the default.
	[[ "$output" == *"entry 0x100000, command line: $fc_default"$'\n'* ]]
	# An empty boot_args is the guest's choice, not a missing one.
	echo "{ \"boot-source\": { \"kernel_image_path\": \"$TEST_GUEST\", \"boot_args\": \"\" } }" >"$D/vm.json"
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json" --level Debug
	[ "$status" -eq 0 ]
	[[ "$output" == *"entry 0x100000, command line: "$'\n'* ]]
}

@test "serial_out_path sends the console to a file" {
	cat >"$D/vm.json" <<JSON
{ "boot-source": { "kernel_image_path": "$TEST_GUEST" },
  "serial": { "serial_out_path": "$D/console.log" } }
JSON
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json"
	[ "$status" -eq 0 ]
	[[ "$output" != *"hello from the guest"* ]]
	grep -q "hello from the guest" "$D/console.log"
}

@test "--level and --log-path put the log in a file" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "" 1 64
	run timeout 20 "$EMBER" --no-api --config-file "$D/vm.json" --boot-timer --log-path "$D/log" --level Info --id vm-42
	[ "$status" -eq 0 ]
	grep -q "\[vm-42\] \[Info\] Guest-boot-time" "$D/log"
}

# --- errors: each must exit non-zero with a message naming what is wrong ---

expect_error() { # expect_error PATTERN ARGS...
	local pattern=$1
	shift
	run timeout 20 "$EMBER" "$@"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$pattern"* ]]
}

@test "error: missing config file names the path" {
	expect_error "$D/nope.json" --no-api --config-file "$D/nope.json"
}

@test "error: invalid JSON gives line and column" {
	printf '{\n  "boot-source": {\n    "kernel_image_path": \n' >"$D/vm.json"
	expect_error "line 4" --no-api --config-file "$D/vm.json"
}

@test "error: unknown top-level key and unknown field are named" {
	echo "{\"boot-source\": {\"kernel_image_path\": \"$TEST_GUEST\"}, \"bogus\": 1}" >"$D/vm.json"
	expect_error "unknown key 'bogus'" --no-api --config-file "$D/vm.json"
	echo '{"boot-source": {"kernel_image_path": "x", "kernel": 1}}' >"$D/vm.json"
	expect_error "unknown field 'kernel'" --no-api --config-file "$D/vm.json"
}

@test "error: wrong types and out-of-range values name the key" {
	write_config "$D/vm.json" "$TEST_GUEST" "" "" 0 64
	expect_error "'vcpu_count' is 0, must be between 1 and 32" --no-api --config-file "$D/vm.json"
	write_config "$D/vm.json" "$TEST_GUEST" "" "" 33 64
	expect_error "'vcpu_count'" --no-api --config-file "$D/vm.json"
	write_config "$D/vm.json" "$TEST_GUEST" "" "" 1 8
	expect_error "'mem_size_mib' is 8" --no-api --config-file "$D/vm.json"
	write_config "$D/vm.json" "$TEST_GUEST" "" "" '"two"' 64
	expect_error "'vcpu_count' must be an integer" --no-api --config-file "$D/vm.json"
	echo '{"boot-source": {"kernel_image_path": 7}}' >"$D/vm.json"
	expect_error "'kernel_image_path' must be a string" --no-api --config-file "$D/vm.json"
}

@test "error: missing kernel and missing initrd name the file" {
	# Opened as boot-source is read, as Firecracker does; its words, then the path.
	write_config "$D/vm.json" "$D/no-kernel" "" "" 1 64
	expect_error "The kernel file cannot be opened: No such file or directory (os error 2) [$D/no-kernel]" --no-api --config-file "$D/vm.json"
	write_config "$D/vm.json" "$TEST_GUEST" "$D/no-initrd" "" 1 64
	expect_error "The initrd file cannot be opened due to invalid path or invalid permissions. No such file or directory (os error 2) [$D/no-initrd]" --no-api --config-file "$D/vm.json"
}

@test "error: truncated, foreign and garbage kernel images are rejected" {
	head -c 3000 "$TEST_GUEST" >"$D/truncated.elf"
	write_config "$D/vm.json" "$D/truncated.elf" "" "" 1 64
	expect_error "kernel $D/truncated.elf: segment 0 extends past the end of the file" --no-api --config-file "$D/vm.json"
	cp "$TEST_GUEST" "$D/arm.elf"
	printf '\xb7\x00' | dd of="$D/arm.elf" bs=1 seek=18 conv=notrunc status=none # EM_AARCH64
	write_config "$D/vm.json" "$D/arm.elf" "" "" 1 64
	expect_error "is not x86_64" --no-api --config-file "$D/vm.json"
	head -c 4096 /dev/urandom >"$D/garbage"
	write_config "$D/vm.json" "$D/garbage" "" "" 1 64
	expect_error "neither an ELF vmlinux nor a bzImage" --no-api --config-file "$D/vm.json"
	: >"$D/empty"
	write_config "$D/vm.json" "$D/empty" "" "" 1 64
	expect_error "too short" --no-api --config-file "$D/vm.json"
}

@test "error: a command line longer than the kernel accepts" {
	long=$(printf 'x%.0s' $(seq 2100))
	write_config "$D/vm.json" "$TEST_GUEST" "" "$long" 1 64
	expect_error "'boot_args' is longer than 2047 bytes" --no-api --config-file "$D/vm.json"
}

@test "error: an initrd too large for guest memory" {
	truncate -s 20M "$D/big.img"
	write_config "$D/vm.json" "$TEST_GUEST" "$D/big.img" "" 1 16
	expect_error "do not fit" --no-api --config-file "$D/vm.json"
}

@test "error: bad options" {
	expect_error "--no-api needs --config-file" --no-api
	expect_error "--level Loud" --no-api --level Loud
	expect_error "unexpected argument" --no-api stray
}

@test "on a PVM host a standard Linux kernel is refused with an explicit message" {
	if [ ! -e /sys/module/kvm_pvm ]; then
		skip "this host's KVM is not PVM"
	fi
	[ -f "$GUEST_VMLINUX" ] || { echo "build/guest/vmlinux missing: run make kernel"; false; }
	write_config "$D/vm.json" "$GUEST_VMLINUX" "$GUEST_INITRAMFS" "$LINUX_ARGS" 1 128
	expect_error "PVM" --no-api --config-file "$D/vm.json"
	write_config "$D/vm.json" "$GUEST_BZIMAGE" "" "$LINUX_ARGS" 1 128
	expect_error "only runs kernels built as PVM guests" --no-api --config-file "$D/vm.json"
}
