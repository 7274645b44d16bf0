#!/usr/bin/env bats
# build/ember-jailer: the jail's tree, and in the jailed ember each layer the jailer adds:
# user and group, no capabilities, no_new_privs, seccomp, cgroups (v1 and v2), the network
# namespace, resource limits, PID namespace, daemonizing. Then the whole API flow under the
# jailer, and every refusal of bad input with its message. Needs root, as the jailer does.

load lib/common
source "$EMBER_ROOT/tests/lib/host-kind.sh"
source "$EMBER_ROOT/tests/lib/jail-libs.sh"

JAILER="$EMBER_ROOT/build/ember-jailer"
JUID=10000
JGID=10001
# Our cgroups live under their own parent, away from any real jail's.
CG_PARENT=ember-bats

setup_file() {
	[ "$(id -u)" -eq 0 ] || skip "the jailer needs root"
}

setup() {
	D=$(scratch_dir)
	ID="jt-$$-$BATS_TEST_NUMBER"
	BASE="$D/jails"
	JAIL="$BASE/ember/$ID/root"
	EMBER_PID=
	NETNS=
	BIND_MOUNT=
}

teardown() {
	if [ -n "$EMBER_PID" ]; then
		kill -TERM "$EMBER_PID" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$EMBER_PID" 2>/dev/null || break; sleep 0.02; done
		# A survivor of SIGTERM (the test then failed) must not outlive the test.
		kill -KILL "$EMBER_PID" 2>/dev/null || true
	fi
	# The jail's cgroups, in every hierarchy: leaves first, then our parent if empty.
	local dir
	for dir in /sys/fs/cgroup/*/"$CG_PARENT"/"$ID" /sys/fs/cgroup/"$CG_PARENT"/"$ID" \
		/sys/fs/cgroup/*/"$CG_PARENT" /sys/fs/cgroup/"$CG_PARENT"; do
		[ -d "$dir" ] && rmdir "$dir" 2>/dev/null || true
	done
	[ -n "$NETNS" ] && ip netns del "$NETNS" 2>/dev/null || true
	[ -n "$BIND_MOUNT" ] && umount "$BIND_MOUNT" 2>/dev/null || true
	rm -rf "$D"
}

# prepare_jail BOOT_ARGS: the test guest and vm.json in the jail's root, before the jailer
# runs (it leaves an existing jail directory in place, as Firecracker's). ember is static and
# needs nothing else there (a SANITIZE=1 build gets its libraries).
prepare_jail() {
	mkdir -p "$JAIL"
	jail_libs "$JAIL" "$EMBER"
	install -m 0644 "$TEST_GUEST" "$JAIL/guest.elf"
	write_config "$JAIL/vm.json" /guest.elf "" "$1" 2 64
	chmod 0644 "$JAIL/vm.json"
}

# jail_start [JAILER OPTIONS...]: starts a halted test guest under the jailer in the
# background and waits for it; sets EMBER_PID (the jailer execs ember in place).
jail_start() {
	prepare_jail halt
	"$JAILER" --id "$ID" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" "$@" -- --no-api --config-file /vm.json >"$D/out" 2>&1 &
	EMBER_PID=$!
	wait_for "halting"
}

wait_for() { # wait_for TEXT [FILE]
	local file=${2:-$D/out}
	for _ in $(seq 250); do grep -q "$1" "$file" 2>/dev/null && return 0; sleep 0.02; done
	echo "'$1' never appeared in $file:"
	cat "$file"
	return 1
}

# running PID: the process exists and has not exited (a zombie waiting for whoever
# inherited it from the jailer does not count).
running() {
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# status_field PID FIELD: the field's value in /proc/PID/status, tabs squeezed.
status_field() {
	awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"
}

# The v2 hierarchy's mount point and its root's controllers.
v2_mount() {
	awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts
}

# A v1 hierarchy with controller $1 is mounted.
has_v1() {
	awk -v c="$1" '$3 == "cgroup" { n = split($4, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) f = 1 } END { exit !f }' /proc/mounts
}

@test "the jailer boots the test guest: ember copied in, tree, owners and modes" {
	prepare_jail ""
	run timeout 20 "$JAILER" --id "$ID" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" -- --no-api --config-file /vm.json --boot-timer
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from the guest"* ]]
	# ember got the jail's id, and the boot timer counts from the jailer's start.
	[[ "$output" =~ \[$ID\]\ \[Info\]\ Guest-boot-time\ =\ +[0-9]+\ us ]]
	cmp "$EMBER" "$JAIL/ember"
	[ "$(stat -c '%U:%G %a' "$JAIL/ember")" = "root:root 755" ]
	[ "$(stat -c '%u:%g %a' "$JAIL")" = "$JUID:$JGID 755" ]
	[ ! -e "$JAIL/old_root" ]
	for dev in "kvm 10 232" "net/tun 10 200" "urandom 1 9"; do
		set -- $dev
		# %t/%T: major and minor in hex
		[ "$(stat -c '%F %u:%g %a' "$JAIL/dev/$1")" = "character special file $JUID:$JGID 600" ]
		[ "$(stat -c '%t %T' "$JAIL/dev/$1")" = "$(printf '%x %x' "$2" "$3")" ]
	done
}

@test "every thread of the jailed ember: Uid/Gid, no capabilities, NoNewPrivs 1, Seccomp 2" {
	jail_start
	local threads=0
	for task in /proc/"$EMBER_PID"/task/*; do
		t=${task##*/}
		echo "thread $t: $(tr -s '\t' ' ' <"$task/status" | grep -E '^(Name|Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs|Seccomp):' | tr '\n' ' ')"
		[ "$(status_field "$EMBER_PID/task/$t" Uid)" = "$JUID $JUID $JUID $JUID" ]
		[ "$(status_field "$EMBER_PID/task/$t" Gid)" = "$JGID $JGID $JGID $JGID" ]
		[ -z "$(status_field "$EMBER_PID/task/$t" Groups)" ]
		for cap in CapInh CapPrm CapEff CapBnd CapAmb; do
			[ "$(status_field "$EMBER_PID/task/$t" $cap)" = 0000000000000000 ]
		done
		[ "$(status_field "$EMBER_PID/task/$t" NoNewPrivs)" = 1 ]
		[ "$(status_field "$EMBER_PID/task/$t" Seccomp)" = 2 ]
		threads=$((threads + 1))
	done
	[ "$threads" -ge 3 ] # the VMM thread and two vCPUs
	# Its root is the jail (seen from here, its / holds the jail's files); the environment is
	# empty; ember got the jail's id.
	[ "$(stat -c %i /proc/"$EMBER_PID"/root/vm.json)" = "$(stat -c %i "$JAIL/vm.json")" ]
	[ ! -e /proc/"$EMBER_PID"/root/old_root ]
	[ ! -s /proc/"$EMBER_PID"/environ ]
	grep -qx -- "--id=$ID" <(tr '\0' '\n' </proc/"$EMBER_PID"/cmdline)
}

@test "inherited descriptors are closed" {
	prepare_jail halt
	exec 7>"$D/inherited"
	"$JAILER" --id "$ID" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" -- --no-api --config-file /vm.json >"$D/out" 2>&1 &
	EMBER_PID=$!
	exec 7>&-
	wait_for "halting"
	ls -l /proc/"$EMBER_PID"/fd
	run ! grep -q "$D/inherited" < <(ls -l /proc/"$EMBER_PID"/fd)
}

@test "cgroup v1: ember is in the jail's cgroups and the values are applied" {
	has_v1 cpu && has_v1 pids || skip "no cgroup v1 cpu and pids hierarchies here"
	jail_start --parent-cgroup "$CG_PARENT" --cgroup cpu.shares=512 --cgroup pids.max=64
	cat /proc/"$EMBER_PID"/cgroup
	grep -Eq "^[0-9]+:([^:]*,)?cpu(,[^:]*)?:/$CG_PARENT/$ID\$" /proc/"$EMBER_PID"/cgroup
	grep -Eq "^[0-9]+:pids:/$CG_PARENT/$ID\$" /proc/"$EMBER_PID"/cgroup
	cpu=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpu(,|$)/ { print $2; exit }' /proc/mounts)
	pids=$(awk '$3 == "cgroup" && $4 ~ /(^|,)pids(,|$)/ { print $2; exit }' /proc/mounts)
	[ "$(cat "$cpu/$CG_PARENT/$ID/cpu.shares")" = 512 ]
	[ "$(cat "$pids/$CG_PARENT/$ID/pids.max")" = 64 ]
	# Every thread, not just the one the jailer wrote into tasks.
	[ "$(wc -l <"$pids/$CG_PARENT/$ID/tasks")" -eq "$(ls /proc/"$EMBER_PID"/task | wc -l)" ]
}

@test "cgroup v2: ember is in the jail's cgroup and the limits are applied" {
	mount=$(v2_mount)
	[ -n "$mount" ] || skip "no cgroup v2 hierarchy here"
	controllers=$(cat "$mount/cgroup.controllers")
	# A controller the v2 root offers on this machine, with a value to set.
	setting=
	for candidate in pids:pids.max=64 cpu:cpu.weight=50 memory:memory.max=536870912 \
		hugetlb:hugetlb.2MB.max=2097152; do
		if [[ " $controllers " == *" ${candidate%%:*} "* ]]; then
			setting=${candidate#*:}
			break
		fi
	done
	[ -n "$setting" ] || skip "the v2 hierarchy has none of pids, cpu, memory, hugetlb"
	jail_start --cgroup-version 2 --parent-cgroup "$CG_PARENT" --cgroup "$setting" \
		--cgroup cgroup.max.descendants=0
	cat /proc/"$EMBER_PID"/cgroup
	grep -qx "0::/$CG_PARENT/$ID" /proc/"$EMBER_PID"/cgroup
	[ "$(cat "$mount/$CG_PARENT/$ID/${setting%%=*}")" = "${setting#*=}" ]
	[ "$(cat "$mount/$CG_PARENT/$ID/cgroup.max.descendants")" = 0 ]
	grep -qw "${setting%%.*}" "$mount/$CG_PARENT/cgroup.subtree_control"
}

@test "--netns: ember runs in the given network namespace" {
	NETNS="ember-bats-$$"
	ip netns add "$NETNS"
	jail_start --netns "/var/run/netns/$NETNS"
	[ "$(stat -L -c %i /proc/"$EMBER_PID"/ns/net)" = "$(stat -L -c %i "/var/run/netns/$NETNS")" ]
	[ "$(stat -L -c %i /proc/"$EMBER_PID"/ns/net)" != "$(stat -L -c %i /proc/self/ns/net)" ]
	# And in a new mount namespace of its own.
	[ "$(stat -L -c %i /proc/"$EMBER_PID"/ns/mnt)" != "$(stat -L -c %i /proc/self/ns/mnt)" ]
}

@test "--resource-limit: the limits are applied; without, no-file is 2048" {
	jail_start --resource-limit no-file=123 --resource-limit fsize=1000000
	grep -E "^Max open files +123 +123 " /proc/"$EMBER_PID"/limits
	grep -E "^Max file size +1000000 +1000000 " /proc/"$EMBER_PID"/limits
	kill -TERM "$EMBER_PID"
	wait "$EMBER_PID" || true
	ID="$ID-b"
	JAIL="$BASE/ember/$ID/root"
	jail_start
	grep -E "^Max open files +2048 +2048 " /proc/"$EMBER_PID"/limits
}

@test "--new-pid-ns: ember is PID 1 of a new namespace; its PID is in <jail>/ember.pid" {
	prepare_jail halt
	# Output to a file: ember keeps the jailer's stdout open, a pipe would never end.
	"$JAILER" --id "$ID" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" --new-pid-ns -- --no-api --config-file /vm.json \
		--log-path /ember.log >"$D/out" 2>&1 # the jailer returns once the child runs
	EMBER_PID=$(cat "$JAIL/ember.pid")
	wait_for "VM started" "$JAIL/ember.log"
	grep -E "^NSpid:\s+$EMBER_PID\s+1$" /proc/"$EMBER_PID"/status
	[ "$(status_field "$EMBER_PID" Seccomp)" = 2 ]
	# PID 1 still stops on SIGTERM: ember handles it (signalfd).
	kill -TERM "$EMBER_PID"
	for _ in $(seq 100); do running "$EMBER_PID" || break; sleep 0.02; done
	run ! running "$EMBER_PID"
	EMBER_PID= # gone: nothing left for teardown
}

# --- a jail directory that a previous ember (running as the jail's user) tampered with ---

# jail_refused PATTERN [JAILER OPTIONS...]: the jailer exits 1 naming what it refuses, and no
# ember runs.
jail_refused() {
	local pattern=$1
	shift
	# Into a file: an ember the jailer wrongly started would hold a pipe open.
	status=0
	timeout 20 "$JAILER" --id "$ID" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" "$@" -- --no-api --config-file /vm.json >"$D/out" 2>&1 ||
		status=$?
	output=$(cat "$D/out")
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == "ember-jailer: "*"$pattern"* ]]
	[[ "$output" != *"hello from the guest"* ]]
}

@test "a symlinked or user-owned /dev or /dev/net in the jail is refused; what it points to stays untouched" {
	prepare_jail ""
	# The jail's user owns its root: it can leave links to whatever the jail can see.
	mkdir "$JAIL/target"
	ln -s /target "$JAIL/dev"
	jail_refused "the jail's /dev is a symbolic link or not a directory"
	[ -z "$(ls -A "$JAIL/target")" ]
	rm "$JAIL/dev"
	mkdir -m 0755 "$JAIL/dev"
	ln -s /target "$JAIL/dev/net"
	jail_refused "the jail's /dev/net is a symbolic link or not a directory"
	[ -z "$(ls -A "$JAIL/target")" ]
	[ ! -e "$JAIL/dev/kvm" ]
	# A /dev the jail's user owns: it could swap a node for a link before the chown.
	rm "$JAIL/dev/net"
	chown "$JUID:$JGID" "$JAIL/dev"
	jail_refused "the jail's /dev is owned by uid $JUID or writable by others"
	chown 0:0 "$JAIL/dev"
	chmod 0777 "$JAIL/dev"
	jail_refused "the jail's /dev is owned by uid 0 or writable by others (mode 777)"
	# Put right, the same jail runs.
	chmod 0755 "$JAIL/dev"
	run timeout 20 "$JAILER" --id "$ID" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" -- --no-api --config-file /vm.json
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from the guest"* ]]
}

@test "--new-pid-ns: a pid file that links to a host file (a drive's bind mount) is refused; the file is untouched" {
	prepare_jail halt
	# A host file the jail can see, as a drive image is: bind-mounted into the jail's root.
	echo "host data" >"$D/host-file"
	touch "$JAIL/drive.img"
	mount --bind "$D/host-file" "$JAIL/drive.img"
	BIND_MOUNT="$JAIL/drive.img"
	ln -s /drive.img "$JAIL/ember.pid"
	status=0
	timeout 20 "$JAILER" --id "$ID" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" --new-pid-ns -- --no-api --config-file /vm.json \
		>"$D/out" 2>&1 || status=$?
	output=$(cat "$D/out")
	echo "$output"
	# Should the jailer have written through the link, its ember must still be stopped.
	pid=$(grep -xE '[0-9]+' "$D/host-file" || true)
	[ -z "$pid" ] || EMBER_PID=$pid
	[ "$status" -eq 1 ]
	[[ "$output" == "ember-jailer: --new-pid-ns: the jail's /ember.pid is a symbolic link, not a regular file"* ]]
	[ "$(cat "$D/host-file")" = "host data" ]
	[ -L "$JAIL/ember.pid" ]
	# A directory is no pid file either; a stale regular one is replaced.
	rm "$JAIL/ember.pid"
	mkdir "$JAIL/ember.pid"
	jail_refused "--new-pid-ns: the jail's /ember.pid is something else, not a regular file" --new-pid-ns
	rmdir "$JAIL/ember.pid"
	echo stale >"$JAIL/ember.pid"
	"$JAILER" --id "$ID" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" --new-pid-ns -- --no-api --config-file /vm.json \
		--log-path /ember.log >"$D/out" 2>&1
	EMBER_PID=$(cat "$JAIL/ember.pid")
	wait_for "VM started" "$JAIL/ember.log"
	grep -E "^NSpid:\s+$EMBER_PID\s+1$" /proc/"$EMBER_PID"/status
}

@test "--daemonize: a session of its own, standard I/O on /dev/null" {
	prepare_jail halt
	"$JAILER" --id "$ID" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" --daemonize -- --no-api --config-file /vm.json \
		--log-path /ember.log >"$D/out" 2>&1 &
	EMBER_PID=$!
	wait_for "VM started" "$JAIL/ember.log"
	[ "$(awk '{ print $6 }' /proc/"$EMBER_PID"/stat)" = "$EMBER_PID" ] # session id
	for fd in 0 1 2; do [ "$(readlink /proc/"$EMBER_PID"/fd/$fd)" = /dev/null ]; done
	[ ! -s "$D/out" ]
}

@test "the API flow under the jailer boots the test guest (InstanceStart through the socket)" {
	run timeout 60 "$EMBER_ROOT/tests/helpers/jailed-api-boot.sh" "$TEST_GUEST" "" "console=ttyS0" 2 64
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from the guest"* ]]
	[[ "$output" =~ Guest-boot-time\ =\ +[0-9]+\ us ]]
	[[ "$output" != *"bad syscall"* ]]
}

@test "the API flow under the jailer boots Linux where /dev/kvm can (the emulated host here); vsock works both ways through the jail" {
	# The kernels are part of the standard set-up: missing ones fail, saying what to build.
	require_linux_host "$GUEST_VMLINUX" "$GUEST_INITRAMFS"
	export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-300}
	# The guest also talks vsock both ways through the jail's /v.sock.
	local cmd="echo $(unechoed 'jailed guest userspace'); ember-vsock listen -n 1 5000 & echo jailed-g2h | ember-vsock connect 2 5001; echo GUEST-G2H-RC=\$?; wait"
	EMBER_JAIL_VSOCK=1 run ember_on_linux_host timeout 240 "$EMBER_ROOT/tests/helpers/jailed-api-boot.sh" \
		"$GUEST_VMLINUX" "$GUEST_INITRAMFS" "$LINUX_ARGS -- $cmd" 1 128
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"jailed guest userspace"* ]]
	[[ "$output" == *"EMBER-EXIT-STATUS=0"* ]]
	[[ "$output" != *"bad syscall"* ]]
	[[ "$output" == *"HOST-H2G-REPLY=jailed-h2g"* ]]
	[[ "$output" == *"GUEST-G2H-RC=0"* ]]
	grep -q "^jailed-g2h" <<<"$(tr -d '\r' <<<"$output")"
}

@test "on a PVM host the jailed ember (no /sys in the jail) still refuses a standard kernel up front" {
	if [ ! -e /sys/module/kvm_pvm ]; then
		skip "this host's KVM is not PVM"
	fi
	[ -f "$GUEST_VMLINUX" ] || { echo "build/guest/vmlinux missing: run make kernel"; false; }
	run timeout 60 "$EMBER_ROOT/tests/helpers/jailed-api-boot.sh" "$GUEST_VMLINUX" "" "$LINUX_ARGS" 1 128
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"PUT /actions: HTTP 400"*"/dev/kvm is PVM"* ]]
}

# --- bad input: refused before anything is created, with a message naming the value ---

# refused PATTERN JAILER-ARGS...: exit 1, PATTERN in the message, no jail created.
refused() {
	local pattern=$1
	shift
	run "$JAILER" "$@"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == "ember-jailer: "*"$pattern"* ]]
	[ ! -e "$BASE/ember" ]
}

@test "refused: invalid ids" {
	local common=(--exec-file "$EMBER" --uid 1 --gid 1 --chroot-base-dir "$BASE")
	refused "--id 'a/b': only letters, digits and '-' are allowed" --id a/b "${common[@]}"
	refused "--id '..': only letters" --id .. "${common[@]}"
	refused "--id 'vm_1': only letters" --id vm_1 "${common[@]}"
	long=$(printf 'a%.0s' $(seq 65))
	refused "--id '$long': must be 1 to 64 characters long" --id "$long" "${common[@]}"
	refused "--id '': must be 1 to 64" --id "" "${common[@]}"
}

@test "refused: a missing, symlinked or non-regular exec file" {
	local common=(--id "$ID" --uid 1 --gid 1 --chroot-base-dir "$BASE")
	refused "--exec-file $D/nope: No such file or directory" --exec-file "$D/nope" "${common[@]}"
	ln -s "$EMBER" "$D/ember-link"
	refused "--exec-file $D/ember-link: is a symbolic link" --exec-file "$D/ember-link" "${common[@]}"
	refused "--exec-file $D: is not a regular file" --exec-file "$D" "${common[@]}"
	echo data >"$D/plain"
	refused "--exec-file $D/plain: is not executable" --exec-file "$D/plain" "${common[@]}"
}

@test "refused: a missing network namespace, or a file that is not one" {
	local common=(--id "$ID" --exec-file "$EMBER" --uid 1 --gid 1 --chroot-base-dir "$BASE")
	refused "--netns /var/run/netns/ember-bats-none: No such file or directory" \
		--netns /var/run/netns/ember-bats-none "${common[@]}"
	refused "--netns /proc/self/ns/mnt: is not a network namespace" \
		--netns /proc/self/ns/mnt "${common[@]}"
}

@test "refused: unknown cgroup files and controllers, malformed settings" {
	local common=(--id "$ID" --exec-file "$EMBER" --uid 1 --gid 1 --chroot-base-dir "$BASE"
		--parent-cgroup "$CG_PARENT")
	if has_v1 cpu; then
		# Some files exist only below a hierarchy's root (pids.max), so a file that neither
		# the root nor any child cgroup shows is refused once the jail's cgroup exists:
		# after the jail directory, but before any value is written or ember runs.
		run "$JAILER" --cgroup cpu.no_such_file=1 "${common[@]}"
		echo "$output"
		[ "$status" -eq 1 ]
		[[ "$output" == "ember-jailer: --cgroup cpu.no_such_file=1: unknown cgroup file 'cpu.no_such_file'"* ]]
		[ ! -d "$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpu(,|$)/ { print $2; exit }' /proc/mounts)/$CG_PARENT/$ID" ]
		rm -rf "$BASE"
	fi
	refused "--cgroup nosuchctl.max=1: no cgroup v1 hierarchy has the 'nosuchctl' controller" \
		--cgroup nosuchctl.max=1 "${common[@]}"
	if [ -n "$(v2_mount)" ]; then
		refused "has no 'nosuchctl' controller" --cgroup-version 2 --cgroup nosuchctl.max=1 "${common[@]}"
	fi
	refused "--cgroup 'cpushares=1': the file must be <controller>.<name>" --cgroup cpushares=1 "${common[@]}"
	refused "--cgroup 'cpu.shares': expected FILE=VALUE" --cgroup cpu.shares "${common[@]}"
	refused "--cgroup-version '3': expected 1 or 2" --cgroup-version 3 "${common[@]}"
	refused "--parent-cgroup '../up': must not contain '..'" --parent-cgroup ../up \
		--id "$ID" --exec-file "$EMBER" --uid 1 --gid 1 --chroot-base-dir "$BASE"
}

@test "refused: a chroot base that is not a directory, or not absolute" {
	echo file >"$D/file"
	BASE="$D/file"
	refused "--chroot-base-dir $D/file: is not a directory" \
		--id "$ID" --exec-file "$EMBER" --uid 1 --gid 1 --chroot-base-dir "$D/file"
	BASE="$D/jails"
	refused "--chroot-base-dir relative/dir: must be an absolute path" \
		--id "$ID" --exec-file "$EMBER" --uid 1 --gid 1 --chroot-base-dir relative/dir
}

@test "refused: bad uid, gid, resource limits, options and arguments" {
	local common=(--id "$ID" --exec-file "$EMBER" --chroot-base-dir "$BASE")
	refused "--uid 'root': expected a number" --uid root --gid 1 "${common[@]}"
	refused "--gid '-1': expected a number" --uid 1 --gid -1 "${common[@]}"
	refused "--uid '4294967295': expected a number from 0 to 4294967294" --uid 4294967295 --gid 1 "${common[@]}"
	refused "--resource-limit 'nproc=1': unknown resource 'nproc'" --uid 1 --gid 1 --resource-limit nproc=1 "${common[@]}"
	refused "--resource-limit 'fsize=big': 'big' is not a number" --uid 1 --gid 1 --resource-limit fsize=big "${common[@]}"
	refused "unknown option '--bogus'" --uid 1 --gid 1 --bogus "${common[@]}"
	refused "--netns needs a value" --uid 1 --gid 1 "${common[@]}" --netns
	refused "unexpected argument 'stray'" --uid 1 --gid 1 "${common[@]}" stray
	refused "--id, --exec-file, --uid and --gid are required" --id "$ID"
}

@test "the jailer with just the binary boots the test guest: nothing else in the jail" {
	[[ "$(ldd "$EMBER")" == *libasan* ]] && skip "a SANITIZE=1 ember is dynamically linked"
	# Firecracker's jailer docs: the binary, and the guest's files; no libraries.
	mkdir -p "$JAIL"
	install -m 0644 "$TEST_GUEST" "$JAIL/guest.elf"
	write_config "$JAIL/vm.json" /guest.elf "" "" 1 64
	run timeout 20 "$JAILER" --id "$ID" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" -- --no-api --config-file /vm.json
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from the guest"* ]]
	[ "$(cd "$JAIL" && find . -mindepth 1 | sort | tr '\n' ' ')" = \
		"./dev ./dev/kvm ./dev/net ./dev/net/tun ./dev/urandom ./ember ./guest.elf ./vm.json " ]
}

@test "a dynamically linked exec file without its libraries fails at exec with a message that says so" {
	cp /usr/bin/true "$D/true" # dynamically linked, as Debian builds it
	run "$JAILER" --id "$ID" --exec-file "$D/true" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"exec /true: its ELF interpreter or a shared library is missing inside the jail"* ]]
}

# last_count FILE: the counting guest's last complete "count=N" in FILE (0 if none).
last_count() {
	local n
	n=$(grep -ao 'count=[0-9]*'$'\r' "$1" | tail -1 | tr -dc 0-9)
	echo "${n:-0}"
}

@test "snapshots under the jailer: created inside one jail (paths in its root), loaded with --snapshot in another" {
	mkdir -p "$JAIL"
	jail_libs "$JAIL" "$EMBER"
	install -m 0644 "$TEST_GUEST" "$JAIL/guest.elf"
	"$JAILER" --id "$ID" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" -- --api-sock /api.sock >"$D/out" 2>&1 &
	EMBER_PID=$!
	SOCK="$JAIL/api.sock"
	for _ in $(seq 250); do [ -S "$SOCK" ] && break; sleep 0.02; done
	# "count" is only the guest's word: its output, count=N, is not on the command line.
	expect_api 204 PUT /boot-source '{"kernel_image_path": "/guest.elf", "boot_args": "count"}'
	expect_api 204 PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}'
	expect_api 204 PUT /actions '{"action_type": "InstanceStart"}'
	for _ in $(seq 200); do [ "$(last_count "$D/out")" -ge 2 ] && break; sleep 0.05; done
	expect_api 204 PATCH /vm '{"state": "Paused"}'
	expect_api 204 PUT /snapshot/create '{"snapshot_path": "/vm.state", "mem_file_path": "/vm.mem"}'
	saved=$(last_count "$D/out")
	[ "$saved" -ge 2 ]
	# Written by the jailed uid, in the jail's root.
	[ "$(stat -c %u "$JAIL/vm.state")" -eq "$JUID" ]
	[ "$(stat -c %u "$JAIL/vm.mem")" -eq "$JUID" ]
	kill -KILL "$EMBER_PID"
	wait "$EMBER_PID" 2>/dev/null || true

	# A second jail gets the two files (as a user would hard-link or copy them in).
	local jail2="$BASE/ember/$ID-b/root"
	mkdir -p "$jail2"
	jail_libs "$jail2" "$EMBER"
	cp "$JAIL/vm.state" "$JAIL/vm.mem" "$jail2/"
	chown "$JUID:$JGID" "$jail2/vm.state" "$jail2/vm.mem"
	"$JAILER" --id "$ID-b" --exec-file "$EMBER" --uid "$JUID" --gid "$JGID" \
		--chroot-base-dir "$BASE" -- --no-api --snapshot /vm.state --snapshot-mem /vm.mem \
		>"$D/out2" 2>&1 &
	EMBER_PID=$!
	for _ in $(seq 200); do [ "$(last_count "$D/out2")" -ge $((saved + 2)) ] && break; sleep 0.05; done
	cat "$D/out2"
	[ "$(last_count "$D/out2")" -ge $((saved + 2)) ]
	grep -q "snapshot /vm.state loaded in [0-9]* us, vCPUs running" "$D/out2"
	run grep -q "bad syscall" "$D/out" "$D/out2"
	[ "$status" -eq 1 ]
}
