#!/usr/bin/env bats
# ember-run where /dev/kvm can boot a Linux guest (directly on a hardware KVM host, in the
# emulated KVM host here): tests/run/l1-run.sh makes a template per group and runs many
# commands from it; each test here is one group, one emulated-host boot.

load lib/common
source "$EMBER_ROOT/tests/lib/host-kind.sh"

setup_file() {
	require_linux_host "$GUEST_VMLINUX" "$EMBER_ROOT/build/guest/rootfs.ext4" \
		"$EMBER_ROOT/build/ember-run" "$EMBER_ROOT/build/ember" || return 1
	export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-400}
}

setup() {
	D=$(scratch_dir)
}

teardown() {
	rm -rf "$D"
}

# nothing_left: no ember process, ember-run directory or TAP outlived the runs.
nothing_left() {
	[ "$(value RUN-LEFT)" = "procs=0 dirs=0 taps=0" ]
}

@test "ember-run from a template: output, exit codes, stdin, env, workdir, 4 MiB out, copy-in, overlay, --json, timeout, SIGTERM, SIGKILL, entropy, clock, cold boot" {
	run ember_on_linux_host "$EMBER_ROOT/tests/run/l1-run.sh" basics "$D"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(value RUN-TEMPLATE-FILES)" = "rootfs.ext4 template.json vm.mem vm.state " ]
	[ "$(value RUN-ECHO)" = "hello rc=0" ]
	[ "$(value RUN-EXIT3)" = "to-out rc=3 err=to-err" ]
	[ "$(value RUN-FALSE)" = "rc=1" ]
	[ "$(value RUN-KILLED)" = "before rc=137" ]
	[ "$(value RUN-STDIN-LINES)" = 3 ]
	local sha
	sha=$(value RUN-STDIN-SHA)
	[ "${sha% *}" = "${sha#* }" ]
	[ "${#sha}" -eq 129 ]
	[[ "$(value RUN-ENV-WD)" == "bar|a b|/proc/"*"|/root" ]]
	[ "$(value RUN-BAD-WORKDIR)" = "rc=126 ember-agent: workdir /nonexistent: No such file or directory" ]
	[ "$(value RUN-NOT-FOUND)" = "rc=127 ember-agent: no-such-program: No such file or directory" ]
	# 4 MiB of binary output through the agent, byte for byte.
	local big got want
	big=$(value RUN-BIG-OUT)
	got=${big#*got=} got=${got%% *} want=${big#*want=}
	[[ "$big" == "rc=0 size=4194304 "* ]]
	[ "${#got}" -eq 64 ]
	[ "$got" = "$want" ]
	local copy
	copy=$(value RUN-COPY-IN)
	[[ "$copy" == *" 750 script-ran x want="* ]]
	[ "${copy%% *}" = "${copy##*want=}" ]
	# A write to the root lands in the run's tmpfs overlay, gone in the next run; the root
	# drive is read-only, and its image is the same after all the runs.
	[ "$(value RUN-OVERLAY-WRITE)" = "mine overlay" ]
	[ "$(value RUN-OVERLAY-NEXT)" = "cat: can't open '/etc/run-marker': No such file or directory 1" ]
	[ "$(value RUN-ROOT-UNCHANGED)" = 1 ]
	[ "$(value RUN-JSON-RC)" = 7 ]
	[ "$(value RUN-JSON)" = '{"exit_code":7,"stdout":"j-out\n","stderr":"j-err\n","timed_out":false,"phases":["command","connect","restore","teardown","total"]}' ]
	[ "$(value RUN-JSON-B64)" = "//4=" ]
	# The timeout: 124 after about 3 s, the VM killed, nothing left.
	local t ms
	t=$(value RUN-TIMEOUT)
	[[ "$t" == "rc=124 ms="*" ember-run: timed out after 3 s; the VM was killed procs=0 dirs=0 taps=0" ]]
	ms=${t#rc=124 ms=} ms=${ms%% *}
	[ "$ms" -ge 3000 ]
	[ "$ms" -lt 6000 ]
	[ "$(value RUN-TIMEOUT-JSON)" = '{"exit_code":124,"timed_out":true}' ]
	# SIGTERM while the command runs: 128+15, the VM killed, nothing left.
	[ "$(value RUN-SIGTERM)" = "rc=143 out=started ember-run: interrupted by signal 15; the VM was killed procs=0 dirs=0 taps=0" ]
	[ "$(value RUN-SIGKILL)" = "procs=0 dirs=0 taps=0" ]
	# Two runs of one template: different random UUIDs (the agent reseeded the CRNG).
	local u
	u=$(value RUN-UUIDS)
	[ "${#u}" -eq 73 ]
	[ "${u% *}" != "${u#* }" ]
	# The template was made 8 s or more before; the guest's clock is the host's.
	local c g h m
	c=$(value RUN-CLOCK)
	g=${c#guest=} g=${g%% *} h=${c#*host=} h=${h%% *} m=${c#*made=}
	[ "$((h - m))" -ge 8 ]
	[ "$((g - h))" -ge -2 ]
	[ "$((g - h))" -le 1 ]
	[ "$(value RUN-NET-NO-IFACE)" = "rc=125 ember-run: --net tap:run-x: the template has no network interface (make it with --net tap:NAME)" ]
	[ "$(value RUN-COLD)" = "cold rc=5" ]
	nothing_left
}

@test "ember-run: 8 runs at once from one template, each its own output, entropy and clock; nothing left behind" {
	run ember_on_linux_host "$EMBER_ROOT/tests/run/l1-run.sh" parallel "$D"
	echo "$output"
	[ "$status" -eq 0 ]
	local i line uuids=() t h m
	for i in 0 1 2 3 4 5 6 7; do
		line=$(value "RUN-PAR-$i")
		[[ "$line" == "i=$i uuid="*" sum-ok=1 "* ]]
		uuids+=("$(sed -n 's/.*uuid=\([0-9a-f-]*\) .*/\1/p' <<<"$line")")
		t=$(sed -n 's/.* t=\([0-9]*\) .*/\1/p' <<<"$line")
		h=${line##*host=} h=${h%% *} m=${line##*made=}
		# Made 6 s or more before the runs; each guest's clock was set to the host's.
		[ "$((h - m))" -ge 6 ]
		[ "$t" -gt "$((m + 5))" ]
		[ "$t" -le "$h" ]
	done
	[ "$(printf '%s\n' "${uuids[@]}" | grep -c .)" -eq 8 ]
	[ "$(printf '%s\n' "${uuids[@]}" | sort -u | wc -l)" -eq 8 ]
	nothing_left
}

@test "ember-run: a hostile agent (lying sizes, a cut frame, silence, no status, unknown frames, endless output) is cut off with a clear error; nothing left behind" {
	run ember_on_linux_host "$EMBER_ROOT/tests/run/l1-run.sh" hostile "$D"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$(value RUN-HOSTILE-lie-size)" == "rc=125 "*"err=ember-run: the guest agent broke the protocol: STDOUT frame of 1073741824 bytes (allowed: 1 to 65536)"* ]]
	[[ "$(value RUN-HOSTILE-truncated)" == "rc=125 "*"the guest agent closed the connection inside a frame before the exit status"* ]]
	[[ "$(value RUN-HOSTILE-stall)" == "rc=124 "*"ember-run: timed out after 5 s; the VM was killed"* ]]
	[[ "$(value RUN-HOSTILE-no-exit)" == "rc=125 "*"out=partial? err=ember-run: the guest agent closed the connection before the exit status"* ]]
	[[ "$(value RUN-HOSTILE-garbage)" == "rc=125 "*"frame type 0x4242 is not one the host receives"* ]]
	# Nothing after the exit status is read: the run ends with it.
	[[ "$(value RUN-HOSTILE-after-exit)" == "rc=0 "*"out= err=" ]]
	[ "$(value RUN-HOSTILE-endless)" = 'rc=125 {"exit_code":125,"error":"the command'"'"'s output passed 1000000 bytes (--max-output); the VM was killed"}' ]
	[ "$(value RUN-HOSTILE-NORMAL)" = "fine rc=0" ]
	nothing_left
}

@test "ember-run --net tap:NAME: a template with an interface, a run on a TAP of its own pings the host; --net none and a missing TAP are refused" {
	run ember_on_linux_host "$EMBER_ROOT/tests/run/l1-run.sh" net "$D"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(value RUN-NET-PING)" = "ping-ok rc=0" ]
	[ "$(value RUN-NET-NONE)" = "rc=125 ember-run: --net none: the template has a network interface (on TAP run-tap0 when it was made); give each run a TAP of its own with --net tap:NAME" ]
	[[ "$(value RUN-NET-MISSING)" == "rc=125 "*"TAP device run-nope does not exist"* ]]
	nothing_left
}

@test "ember-run --jail: ember under ember-jailer as another user in a cgroup, the template bound in read-only; root only; no cgroup or mount left; a SIGKILLed ember-run takes the jailed ember with it" {
	run ember_on_linux_host "$EMBER_ROOT/tests/run/l1-run.sh" jail "$D"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(value RUN-JAIL-IDS)" = " 4242 4243" ]
	[ "$(value RUN-JAIL-CGROUP)" = "pids.max=64 member=1" ]
	[ "$(value RUN-JAIL-ROOT)" = "dev ember restore.json v.sock vm.mem vm.state " ]
	[ "$(value RUN-JAIL-ROOTFS)" = "bound" ]
	[ "$(value RUN-JAIL-RUN)" = "jailed rc=0" ]
	[ "$(value RUN-JAIL-SIGKILL)" = "ember before=1 after=0" ]
	[ "$(value RUN-JAIL-NOT-ROOT)" = "ember-run: --jail needs root (ember-jailer makes the jail, then drops to --jail-uid)" ]
	[ "$(value RUN-JAIL-LEFT)" = "cgroups=0 mounts=0" ]
	nothing_left
}
