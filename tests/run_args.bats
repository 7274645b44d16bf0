#!/usr/bin/env bats
# ember-run on this host, without a Linux guest: its command line, template.json as the
# hostile input it is (a directory anyone may hand over), and the teardown after ember
# refuses a template: each failure is 125 with a message that names the cause, and no
# process or file is left. (Runs from templates are in tests/run_linux.bats.)

load lib/common

ER="${EMBER_BUILD:-$EMBER_ROOT/build}/ember-run"

setup() {
	D=$(scratch_dir)
	export TMPDIR="$D/tmp"
	mkdir -p "$TMPDIR"
	T="$D/tpl"
	mkdir -p "$T"
	head -c 4096 /dev/zero >"$T/vm.state"
	truncate -s 1M "$T/vm.mem"
	truncate -s 1M "$T/rootfs.ext4"
}

teardown() {
	rm -rf "$D"
}

meta() { # meta JSON: T's template.json
	printf '%s\n' "$1" >"$T/template.json"
}

good='{"format": 1, "snapshot": "vm.state", "memory": "vm.mem", "rootfs": "rootfs.ext4", "agent_port": 52, "mem_mib": 128, "vcpus": 1}'

@test "ember-run's command line: usage, and each bad option named" {
	run "$ER"
	[ "$status" -eq 2 ]
	[[ "$output" == "usage: ember-run --make-template DIR"* ]]
	run "$ER" --help
	[ "$status" -eq 0 ]
	run "$ER" --make-template "$D/x" -- true
	[ "$status" -eq 125 ]
	[ "$output" = "ember-run: --make-template runs no command" ]
	run "$ER" --net bogus -- true
	[ "$output" = "ember-run: --net must be 'none' or 'tap:NAME' (NAME at most 15 bytes)" ]
	run "$ER" --copy-in nocolon -- true
	[ "$output" = "ember-run: --copy-in wants HOST:GUEST, GUEST an absolute path" ]
	run "$ER" --copy-in a:relative -- true
	[ "$output" = "ember-run: --copy-in wants HOST:GUEST, GUEST an absolute path" ]
	run "$ER" --workdir tmp -- true
	[ "$output" = "ember-run: --workdir must be an absolute path" ]
	run "$ER" --timeout -1 -- true
	[ "$status" -eq 125 ]
	[ "$output" = "ember-run: --timeout must be a number of seconds above 0, not '-1'" ]
	run "$ER" --env =x -- true
	[ "$output" = "ember-run: --env wants KEY=VALUE or KEY" ]
	run "$ER" --jail -- true
	[ "$output" = "ember-run: --jail runs from a template (--template DIR)" ]
	run "$ER" --template "$T" --make-template "$D/y"
	[ "$output" = "ember-run: --make-template and --template exclude each other" ]
	run "$ER" --mem 1 --make-template "$D/z"
	[ "$output" = "ember-run: --mem must be a number from 32 to 1048576, not '1'" ]
}

@test "template.json is checked field by field before ember starts" {
	run "$ER" --template "$D/nope" -- true
	[ "$status" -eq 125 ]
	[ "$output" = "ember-run: template $D/nope: No such file or directory" ]
	run "$ER" --template "$T" -- true
	[[ "$output" == "ember-run: $T/template.json: unable to open"*"(not a template made by --make-template?)" ]]
	meta '[1]'
	run "$ER" --template "$T" -- true
	[ "$output" = "ember-run: $T/template.json: not a JSON object" ]
	meta '{"format": 1, "format": 1}'
	run "$ER" --template "$T" -- true
	[[ "$output" == *"duplicate object key"* ]]
	meta "${good/\"format\": 1/\"format\": 2}"
	run "$ER" --template "$T" -- true
	[ "$output" = "ember-run: $T/template.json: format 2 (this ember-run reads 1)" ]
	meta "${good/\"vm.state\"/\"../vm.state\"}"
	run "$ER" --template "$T" -- true
	[ "$output" = "ember-run: $T/template.json: 'snapshot' must be a file name in the directory" ]
	meta "${good/\"vm.mem\"/\"..\"}"
	run "$ER" --template "$T" -- true
	[ "$output" = "ember-run: $T/template.json: 'memory' must be a file name in the directory" ]
	meta "${good/\"rootfs.ext4\"/\"gone.ext4\"}"
	run "$ER" --template "$T" -- true
	[ "$output" = "ember-run: $T/gone.ext4: not a regular file (template incomplete?)" ]
	# A link could name any file of the host (bound into a jail as root): refused.
	ln -s /etc/passwd "$T/link.ext4"
	meta "${good/\"rootfs.ext4\"/\"link.ext4\"}"
	run "$ER" --template "$T" -- true
	[ "$output" = "ember-run: $T/link.ext4: not a regular file (template incomplete?)" ]
	meta "${good/\"agent_port\": 52/\"agent_port\": 0}"
	run "$ER" --template "$T" -- true
	[ "$output" = "ember-run: $T/template.json: 'agent_port' must be a number from 1 to 4294967294" ]
	meta "${good/\"vcpus\": 1/\"vcpus\": \"1\"}"
	run "$ER" --template "$T" -- true
	[ "$output" = "ember-run: $T/template.json: 'vcpus' must be a number from 1 to 32" ]
	meta "${good/\"mem_mib\": 128/\"mem_mib\": 128, \"tap\": 5}"
	run "$ER" --template "$T" -- true
	[ "$output" = "ember-run: $T/template.json: 'tap' must be an interface name" ]
	meta "$good"
	run "$ER" --template "$T" --net tap:x -- true
	[ "$output" = "ember-run: --net tap:x: the template has no network interface (make it with --net tap:NAME)" ]
	run "$ER" --template "$T" --copy-in "$D/missing:/x" -- true
	[ "$output" = "ember-run: --copy-in $D/missing: No such file or directory" ]
	[ -z "$(ls -A "$TMPDIR")" ]
}

@test "a template ember refuses: 125 with ember's message, ember gone, its directory removed" {
	meta "$good"
	run "$ER" --template "$T" --json -- true
	echo "$output"
	[ "$status" -eq 125 ]
	[[ "$output" == *'"exit_code":125'* ]]
	[[ "$output" == *'"error":"ember exited (status 1) while waiting for the VM: '*'snapshot'* ]]
	[[ "$output" == *"ember-run: ember exited (status 1) while waiting for the VM: "* ]]
	[ -z "$(ls -A "$TMPDIR")" ]
	# Not even a zombie: ember-run waited for its child.
	run pgrep -f "ember --no-api --config-file $TMPDIR/"
	[ "$status" -eq 1 ]
}
