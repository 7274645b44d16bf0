#!/bin/bash
# ember-run's checks where /dev/kvm boots a Linux guest (in the emulated KVM host here, or
# directly on a hardware KVM host), one group per call, each from a template made here:
#   l1-run.sh basics|parallel|hostile|net|jail DIR
# Prints RUN-<KEY>=<value> lines for tests/run_linux.bats. DIR (in the repository) holds
# the templates and files; ember-run's own temporary directories go to this host's /tmp,
# where the group checks that nothing is left behind.
set -u
group=$1 D=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ER=${EMBER_RUN:-$ROOT/build/ember-run}
export TMPDIR=/tmp/ember-run-test
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"

say() { echo "RUN-$1=$2"; }

# leftovers: ember processes, ember-run directories and TAPs that outlived their runs.
leftovers() {
	local procs dirs taps
	procs=$(pgrep -x ember | wc -l)
	dirs=$(find "$TMPDIR" -mindepth 1 -maxdepth 1 | wc -l)
	taps=$(ip -o link show type tun 2>/dev/null | grep -c 'run-tap' || true)
	echo "procs=$procs dirs=$dirs taps=$taps"
}

make_template() { # make_template DIR [ember-run args]
	local t0 t1
	t0=$(date +%s%N)
	"$ER" --make-template "$@" >"$D/make.out" 2>&1 || { cat "$D/make.out"; return 1; }
	t1=$(date +%s%N)
	say MAKE-MS "$(((t1 - t0) / 1000000))"
}

basics() {
	local T=$D/tpl out
	make_template "$T" || return 1
	say TEMPLATE-FILES "$(cd "$T" && ls | tr '\n' ' ')"
	local root_sum
	root_sum=$(sha256sum <"$T/rootfs.ext4" | cut -c1-64)
	local made
	made=$(date +%s)

	out=$("$ER" --template "$T" --timeout 60 -- echo hello 2>&1)
	say ECHO "$out rc=$?"
	out=$("$ER" --template "$T" --timeout 60 -- sh -c 'echo to-out; echo to-err >&2; exit 3' \
		2>"$D/err")
	say EXIT3 "$out rc=$? err=$(cat "$D/err")"
	"$ER" --template "$T" --timeout 60 -- false
	say FALSE "rc=$?"
	out=$("$ER" --template "$T" --timeout 60 -- sh -c 'echo before; kill -9 $$; echo after')
	say KILLED "$out rc=$?"
	out=$(printf 'one\ntwo\nthree\n' | "$ER" --template "$T" --timeout 60 -- wc -l)
	say STDIN-LINES "$out"
	head -c 1048576 /dev/urandom >"$D/in.bin"
	out=$("$ER" --template "$T" --timeout 60 -- sha256sum <"$D/in.bin")
	say STDIN-SHA "${out%% *} $(sha256sum <"$D/in.bin" | cut -c1-64)"
	out=$("$ER" --template "$T" --timeout 60 --env FOO=bar --env 'SP=a b' --workdir /proc/self \
		-- sh -c 'echo "$FOO|$SP|$(pwd)|$HOME"')
	say ENV-WD "$out"
	"$ER" --template "$T" --timeout 60 --workdir /nonexistent -- true 2>"$D/err"
	say BAD-WORKDIR "rc=$? $(cat "$D/err")"
	"$ER" --template "$T" --timeout 60 -- no-such-program 2>"$D/err"
	say NOT-FOUND "rc=$? $(cat "$D/err")"
	# 4 MiB of binary output, intact.
	"$ER" --template "$T" --timeout 120 -- sh -c \
		'head -c 4194304 /dev/urandom | tee /tmp/b | sha256sum >&2; cat /tmp/b' \
		>"$D/out.bin" 2>"$D/err"
	say BIG-OUT "rc=$? size=$(stat -c %s "$D/out.bin") got=$(sha256sum <"$D/out.bin" | cut -c1-64) want=$(cut -c1-64 "$D/err")"
	# Copy-in: a binary file and a script, mode kept, in a directory made for them.
	head -c 300000 /dev/urandom >"$D/file.bin"
	printf '#!/bin/sh\necho script-ran "$@"\n' >"$D/s.sh"
	chmod 0750 "$D/s.sh"
	out=$("$ER" --template "$T" --timeout 60 --copy-in "$D/file.bin:/in/dir/file.bin" \
		--copy-in "$D/s.sh:/usr/local/bin/s.sh" -- sh -c \
		'sha256sum /in/dir/file.bin | cut -c1-64; stat -c %a /usr/local/bin/s.sh; s.sh x')
	say COPY-IN "$(echo $out) want=$(sha256sum <"$D/file.bin" | cut -c1-64)"
	# The root is read-only and shared; writes land in this run's overlay only.
	out=$("$ER" --template "$T" --timeout 60 -- sh -c \
		'echo mine >/etc/run-marker && cat /etc/run-marker; grep " / " /proc/mounts | cut -d" " -f3')
	say OVERLAY-WRITE "$(echo $out)"
	out=$("$ER" --template "$T" --timeout 60 -- sh -c 'cat /etc/run-marker 2>&1; cat /sys/block/vda/ro')
	say OVERLAY-NEXT "$(echo $out)"
	# --json: one object; binary output as base64.
	"$ER" --template "$T" --timeout 60 --json -- sh -c 'echo j-out; echo j-err >&2; exit 7' \
		>"$D/j.json"
	say JSON-RC "$?"
	say JSON "$(jq -c '{exit_code, stdout, stderr, timed_out, phases: (.timings_ms | keys)}' "$D/j.json")"
	"$ER" --template "$T" --timeout 60 --json -- printf '\377\376' >"$D/j2.json"
	say JSON-B64 "$(jq -r .stdout_base64 "$D/j2.json")"
	# The timeout: 124, the VM killed, nothing left.
	local t0 t1
	t0=$(date +%s%N)
	"$ER" --template "$T" --timeout 3 -- sleep 100 2>"$D/err"
	local rc=$?
	t1=$(date +%s%N)
	say TIMEOUT "rc=$rc ms=$(((t1 - t0) / 1000000)) $(cat "$D/err") $(leftovers)"
	# SIGTERM to ember-run: 143, the VM killed, nothing left.
	"$ER" --template "$T" --timeout 120 -- sh -c 'echo started; sleep 100' >"$D/term.out" \
		2>"$D/err" &
	local p=$! i
	for ((i = 0; i < 600; i++)); do
		[ -s "$D/term.out" ] && break
		sleep 0.1
	done
	kill -TERM "$p"
	wait "$p"
	rc=$?
	say SIGTERM "rc=$rc out=$(cat "$D/term.out") $(cat "$D/err") $(leftovers)"
	# SIGKILL as soon as ember runs, before the agent's connection (whose end would stop the
	# guest anyway): ember goes too, by its death signal; only the directory stays, removed
	# here.
	"$ER" --template "$T" --timeout 120 -- true &
	p=$!
	for ((i = 0; i < 3000; i++)); do
		pgrep -x ember >/dev/null && break
		sleep 0.01
	done
	kill -KILL "$p"
	wait "$p"
	for ((i = 0; i < 50; i++)); do
		[ "$(pgrep -x ember | wc -l)" -eq 0 ] && break
		sleep 0.1
	done
	rm -rf "$TMPDIR"/ember-run.*
	say SIGKILL "$(leftovers)"
	"$ER" --template "$T" --timeout 3 --json -- sleep 100 >"$D/t.json" 2>/dev/null
	say TIMEOUT-JSON "$(jq -c '{exit_code, timed_out}' "$D/t.json")"
	# Each run: fresh entropy, the host's time.
	local u1 u2 now
	u1=$("$ER" --template "$T" --timeout 60 -- cat /proc/sys/kernel/random/uuid)
	u2=$("$ER" --template "$T" --timeout 60 -- cat /proc/sys/kernel/random/uuid)
	say UUIDS "$u1 $u2"
	# The template's clock stopped when it was made; a run's is the host's.
	while (($(date +%s) < made + 8)); do sleep 1; done
	out=$("$ER" --template "$T" --timeout 60 -- date +%s)
	now=$(date +%s)
	say CLOCK "guest=$out host=$now made=$made"
	"$ER" --template "$T" --timeout 60 --net tap:run-x -- true 2>"$D/err"
	say NET-NO-IFACE "rc=$? $(cat "$D/err")"
	# No template: a cold boot of the default guest.
	out=$("$ER" --timeout 300 -- sh -c 'echo cold; exit 5')
	say COLD "$out rc=$?"
	say ROOT-UNCHANGED "$([ "$(sha256sum <"$T/rootfs.ext4" | cut -c1-64)" = "$root_sum" ] && echo 1 || echo 0)"
	say LEFT "$(leftovers)"
}

parallel() {
	local T=$D/tpl n=${RUN_PARALLEL:-8} i
	make_template "$T" || return 1
	local made
	made=$(date +%s)
	while (($(date +%s) < made + 6)); do sleep 1; done
	for ((i = 0; i < n; i++)); do
		"$ER" --template "$T" --timeout 240 --env "I=$i" -- sh -c \
			'echo "i=$I uuid=$(cat /proc/sys/kernel/random/uuid) t=$(date +%s) host=$(cat /proc/sys/kernel/hostname)"; head -c 100000 /dev/zero | tr "\0" "$I" | sha256sum >&2' \
			>"$D/par.$i" 2>"$D/par.$i.err" &
	done
	wait
	local now
	now=$(date +%s)
	for ((i = 0; i < n; i++)); do
		want=$(head -c 100000 /dev/zero | tr '\0' "$i" | sha256sum | cut -c1-64)
		say "PAR-$i" "$(cat "$D/par.$i") sum-ok=$([ "$(cut -c1-64 "$D/par.$i.err")" = "$want" ] && echo 1 || echo 0) host=$now made=$made"
	done
	say LEFT "$(leftovers)"
}

hostile() {
	local T=$D/hostile how
	make_template "$T" --append ember.agent.test=hostile || return 1
	for how in lie-size truncated stall no-exit garbage after-exit; do
		local t0 t1
		t0=$(date +%s%N)
		local limit=15
		[ "$how" = stall ] && limit=5
		"$ER" --template "$T" --timeout "$limit" -- "$how" >"$D/h.out" 2>"$D/h.err"
		local rc=$?
		t1=$(date +%s%N)
		say "HOSTILE-$how" "rc=$rc ms=$(((t1 - t0) / 1000000)) out=$(head -c 100 "$D/h.out" | tr -c '[:print:]' '?') err=$(head -c 300 "$D/h.err" | tr '\n' ' ')"
	done
	# Output that never ends: --json keeps at most --max-output bytes.
	"$ER" --template "$T" --timeout 60 --json --max-output 1000000 -- endless >"$D/h.json" \
		2>"$D/h.err"
	say HOSTILE-endless "rc=$? $(jq -c '{exit_code, error}' "$D/h.json")"
	# The same template still runs ordinary commands.
	say HOSTILE-NORMAL "$("$ER" --template "$T" --timeout 60 -- echo fine) rc=$?"
	say LEFT "$(leftovers)"
}

# --net tap:NAME: a template with an interface, runs each on a TAP of their own.
net() {
	local T=$D/net out
	ip link set lo up
	ip tuntap add dev run-tap0 mode tap && ip link set run-tap0 up || return 1
	make_template "$T" --net tap:run-tap0 || return 1
	ip link del run-tap0
	ip tuntap add dev run-tap1 mode tap && ip addr add 172.31.0.1/24 dev run-tap1 &&
		ip link set run-tap1 up || return 1
	out=$("$ER" --template "$T" --timeout 60 --net tap:run-tap1 -- sh -c \
		'ip link set eth0 up && ip addr add 172.31.0.2/24 dev eth0 && ping -c 1 -W 10 172.31.0.1 >/dev/null && echo ping-ok' 2>&1)
	say NET-PING "$out rc=$?"
	"$ER" --template "$T" --timeout 60 --net none -- true 2>"$D/err"
	say NET-NONE "rc=$? $(cat "$D/err")"
	"$ER" --template "$T" --timeout 60 --net tap:run-nope -- true 2>"$D/err"
	say NET-MISSING "rc=$? $(head -c 300 "$D/err")"
	ip link del run-tap1
	say LEFT "$(leftovers)"
}

# --jail: ember under ember-jailer as another user, with a cgroup limit; nothing left.
jail() {
	local T=$D/jail out pid i
	make_template "$T" || return 1
	"$ER" --template "$T" --timeout 120 --jail --jail-uid 4242 --jail-gid 4243 \
		--cgroup pids.max=64 -- sh -c 'echo jailed; sleep 6' >"$D/j.out" 2>&1 &
	local run=$!
	for ((i = 0; i < 200; i++)); do
		pid=$(pgrep -x ember | head -n1)
		[ -n "$pid" ] && [ -S "$(ls -d "$TMPDIR"/ember-run.*/ember/run-*/root 2>/dev/null)/v.sock" ] && break
		sleep 0.1
	done
	say JAIL-IDS "$(ps -o uid=,gid= -p "$pid" | tr -s ' ')"
	say JAIL-CGROUP "pids.max=$(cat /sys/fs/cgroup/ember/run-*/pids.max 2>&1) member=$(grep -cx "$pid" /sys/fs/cgroup/ember/run-*/cgroup.procs 2>&1)"
	# The root image keeps its host path inside the jail, so the root's listing has that
	# path's first directory too (whatever the checkout is under): named apart.
	local top=${T#/}
	top=${top%%/*}
	say JAIL-ROOT "$(cd /proc/"$pid"/root && ls | grep -vx "$top" | tr '\n' ' ')"
	say JAIL-ROOTFS "$(cd /proc/"$pid"/root && [ -f ".$T/rootfs.ext4" ] && [ "$(ls -A "$top" | wc -l)" -eq 1 ] && echo bound)"
	wait "$run"
	say JAIL-RUN "$(cat "$D/j.out") rc=$?"
	# ember-run killed with SIGKILL mid-run: the jailed ember (another uid: no death signal of
	# its own) goes with it, through the PID namespace whose init it was; what only a live
	# ember-run removes (its directory, the cgroup) is removed here.
	"$ER" --template "$T" --timeout 120 --jail --jail-uid 4242 --jail-gid 4243 \
		--cgroup pids.max=64 -- true >/dev/null 2>&1 &
	run=$!
	# As soon as ember runs: before the agent's connection, whose end stops the guest anyway.
	for ((i = 0; i < 3000; i++)); do
		pgrep -x ember >/dev/null && break
		sleep 0.01
	done
	local before after
	before=$(pgrep -x ember | wc -l)
	kill -KILL "$run"
	wait "$run"
	for ((i = 0; i < 50; i++)); do
		after=$(pgrep -x ember | wc -l)
		[ "$after" -eq 0 ] && break
		sleep 0.1
	done
	say JAIL-SIGKILL "ember before=$before after=$after"
	rm -rf "$TMPDIR"/ember-run.*
	rmdir /sys/fs/cgroup/ember/run-* 2>/dev/null
	say JAIL-NOT-ROOT "$(HOME=/ setpriv --reuid 1000 "$ER" --template "$T" --jail -- true 2>&1)"
	say JAIL-LEFT "cgroups=$(find /sys/fs/cgroup/ember -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l) mounts=$(grep -c ember-run /proc/mounts)"
	say LEFT "$(leftovers)"
}

case "$group" in
basics | parallel | hostile | jail) "$group" ;;
net)
	# A network namespace of its own: its TAPs go with it.
	if [ -z "${RUN_NS_INNER:-}" ]; then
		RUN_NS_INNER=1 exec unshare --net -- "$0" "$@"
	fi
	net
	;;
*)
	echo "usage: $0 basics|parallel|hostile|net|jail DIR" >&2
	exit 2
	;;
esac
