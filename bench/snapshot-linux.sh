#!/usr/bin/env bash
# A Linux guest restored from a snapshot until it answers over vsock, against a cold boot of
# the same guest to the same answer, and against QEMU's microvm restoring the same guest
# from a migration file, in one run (issue 13). The guest: build/guest/vmlinux and the
# initramfs, 1 vCPU, 128 MiB, a vsock device (CID 3), and `ember-vsock listen 5000` (an
# echo) as init's command. The answer: a host connection to port 5000 (ember: its uds_path,
# "CONNECT 5000", "OK"; QEMU: vhost-vsock-device, AF_VSOCK to CID 3) echoes one byte; a
# connection that fails is tried again 2 ms later, until one is answered.
#   prepare: each VMM boots the guest until it answers; ember pauses and writes a Full
#            snapshot (PUT /snapshot/create), QEMU stops and migrates to a file
#            (QMP migrate "exec:cat > FILE"); both into this host's tmpfs (/tmp).
#   per run, interleaved, each VMM process fresh and started ahead (its socket accepting,
#   then 200 ms idle, as a runtime keeps processes ready), the clock started at its first
#   request:
#     ember load:    PUT /snapshot/load (File backend, resume_vm, vsock_override) until
#                    the 204, then until the echo came back
#     QEMU incoming: `-incoming defer` (MIGRATION events on, before the clock), QMP
#                    migrate-incoming "exec:cat FILE", at its MIGRATION event "completed"
#                    cont (the source was stopped, so QEMU keeps the VM paused), at the
#                    RESUME event (the VM runs) until the echo came back
#     ember cold:    PUT machine-config, boot-source, vsock, InstanceStart, then, once the
#                    guest's "listening on 5000" is on the console (connects before it
#                    would each be refused by the booting guest, and slow it), until the
#                    echo came back
# One Python process does all the timing (time.monotonic) over the Unix sockets.
# Needs a standard /dev/kvm; on a PVM host it re-runs itself inside the emulated KVM host.
#   bench/snapshot-linux.sh [-n RUNS]   (default 5; 1-2 minutes in the emulated host)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
while (($#)); do
	case "$1" in
	-n) runs=$2; shift 2 ;;
	*) echo "usage: $0 [-n RUNS]" >&2; exit 2 ;;
	esac
done
for f in build/ember build/guest/vmlinux build/guest/initramfs.cpio.gz; do
	[ -f "$f" ] || { echo "$f missing: run 'make', 'make kernel rootfs'" >&2; exit 1; }
done

. tests/lib/host-kind.sh
if [[ "$(ember_host_kind)" == vmhost ]]; then
	export EMBER_VMHOST_TIMEOUT=${EMBER_VMHOST_TIMEOUT:-590}
	exec tests/vmhost/run -- bench/snapshot-linux.sh -n "$runs"
fi

exec python3 - "$runs" <<'PY'
import json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, time

sys.dont_write_bytecode = True  # no bench/__pycache__ in the tree
sys.path.insert(0, "bench")
import emberapi
from emberapi import EMBER, ROOT, UnixHTTP, request

RUNS = int(sys.argv[1])
KERNEL, INITRD = f"{ROOT}/build/guest/vmlinux", f"{ROOT}/build/guest/initramfs.cpio.gz"
CID, PORT = 3, 5000
ARGS = "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd quiet"
INIT_CMD = f"-- ember-vsock listen {PORT}"
AHEAD = 0.2  # s between a VMM's socket accepting and the first request
RETRY = 0.002  # s between connects that were not answered
LIMIT = 60  # s for any one step
# QEMU's microvm as bench/linux-boot.sh and bench/vsock.sh run it; its only virtio-mmio
# device (vhost-vsock-device) sits on the last transport.
QEMU = ["qemu-system-x86_64",
        "-M", "microvm,acpi=off,x-option-roms=off,auto-kernel-cmdline=off,rtc=off",
        "-device", "i8042", "-accel", "kvm", "-cpu", "host", "-m", "128", "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
        "-kernel", KERNEL, "-initrd", INITRD,
        "-append", f"{ARGS} virtio_mmio.device=512@0xfeb00e00:12 {INIT_CMD}",
        "-device", f"vhost-vsock-device,guest-cid={CID}"]

# The snapshot, the migration file, the sockets and the consoles: this host's /tmp (a
# tmpfs in the emulated host; the repository's 9p share has no sockets and is slow).
tmp = tempfile.mkdtemp(prefix="ember-snaplinux.", dir="/tmp")
procs = []


def req(conn, method, path, body):
    request(conn, method, path, json.dumps(body))


class QMP:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(LIMIT)
        self.sock.connect(path)
        self.rfile = self.sock.makefile("rb")
        self.events = []  # (name, data)
        self.read()  # the greeting
        self.cmd("qmp_capabilities")

    def read(self):
        line = self.rfile.readline()
        if not line:
            raise RuntimeError("QMP: QEMU closed the monitor")
        m = json.loads(line)
        if "event" in m:
            self.events.append((m["event"], m.get("data", {})))
        return m

    def cmd(self, name, **args):
        self.sock.sendall(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        while True:
            m = self.read()
            if "error" in m:
                raise RuntimeError(f"QMP {name}: {m['error']}")
            if "return" in m:
                return m["return"]

    def wait_event(self, name, **data):
        """Until the event NAME came with DATA among its data."""
        seen = 0
        while True:
            for ev, d in self.events[seen:]:
                if ev == name and all(d.get(k) == v for k, v in data.items()):
                    return
                if ev == "MIGRATION" and d.get("status") == "failed":
                    raise RuntimeError("QEMU: the migration failed")
            seen = len(self.events)
            self.read()


def wait_accepting(path, proc):
    emberapi.wait_accepting(path, proc, LIMIT, 0.001)


def spawn(argv, name):
    out = open(f"{tmp}/{name}.console", "w")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    procs.append(proc)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    procs.remove(proc)


def start_ember(name):
    api = f"{tmp}/{name}.api"
    proc = spawn([EMBER, "--api-sock", api], name)
    wait_accepting(api, proc)
    time.sleep(AHEAD)
    return proc, UnixHTTP(api, timeout=LIMIT)


def start_qemu(name, *extra):
    qmp = f"{tmp}/{name}.qmp"
    proc = spawn(QEMU + ["-qmp", f"unix:{qmp},server=on,wait=off", *extra], name)
    wait_accepting(qmp, proc)
    mon = QMP(qmp)
    time.sleep(AHEAD)
    return proc, mon


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        c = s.recv(n - len(data))
        if not c:
            raise ConnectionError("closed")
        data += c
    return data


def echo(s):
    s.sendall(b"x")
    if recv_exact(s, 1) != b"x":
        raise ConnectionError("wrong echo")


def ember_answer(uds):
    """One connection through ember's uds_path: CONNECT, OK, a byte echoed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(uds)
        s.sendall(f"CONNECT {PORT}\n".encode())
        line = b""
        while not line.endswith(b"\n"):
            c = s.recv(1)
            if not c:
                raise ConnectionError("closed before OK")
            line += c
        if not line.startswith(b"OK "):
            raise ConnectionError(f"answer {line!r}")
        echo(s)


def qemu_answer(_):
    """One AF_VSOCK connection to the guest behind vhost-vsock: a byte echoed."""
    with socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect((CID, PORT))
        echo(s)


def until_answer(answer, target, t0, proc):
    """Tries until the guest answers; the time of the answer and the tries that failed."""
    failed = 0
    while True:
        try:
            answer(target)
            return time.monotonic(), failed
        except (OSError, ConnectionError):
            failed += 1
            if proc.poll() is not None:
                raise RuntimeError(f"the VMM exited ({proc.returncode}) before the guest answered")
            if time.monotonic() - t0 > LIMIT:
                raise RuntimeError("the guest never answered")
            time.sleep(RETRY)


def boot_ember(conn, uds):
    req(conn, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})
    req(conn, "PUT", "/boot-source", {"kernel_image_path": KERNEL, "initrd_path": INITRD,
                                      "boot_args": f"{ARGS} {INIT_CMD}"})
    req(conn, "PUT", "/vsock", {"guest_cid": CID, "uds_path": uds})
    req(conn, "PUT", "/actions", {"action_type": "InstanceStart"})


def kib(path):
    st = os.stat(path)
    return f"{st.st_blocks // 2} KiB on disk of {st.st_size >> 10} KiB"


def prepare():
    proc, conn = start_ember("ember-prep")
    t0 = time.monotonic()
    boot_ember(conn, f"{tmp}/prep.vsock")
    t1, _ = until_answer(ember_answer, f"{tmp}/prep.vsock", t0, proc)
    req(conn, "PATCH", "/vm", {"state": "Paused"})
    req(conn, "PUT", "/snapshot/create", {"snapshot_path": f"{tmp}/ember.state",
                                          "mem_file_path": f"{tmp}/ember.mem",
                                          "snapshot_type": "Full"})
    stop(proc)
    print(f"ember: booted to the answer in {(t1 - t0) * 1000:.0f} ms; snapshot memory "
          f"{kib(f'{tmp}/ember.mem')}, state {os.stat(f'{tmp}/ember.state').st_size} bytes")

    proc, mon = start_qemu("qemu-prep")
    t0 = time.monotonic()
    t1, _ = until_answer(qemu_answer, None, t0, proc)
    mon.cmd("stop")
    mon.cmd("migrate", uri=f"exec:cat > {tmp}/qemu.mig")
    while True:
        st = mon.cmd("query-migrate").get("status")
        if st == "completed":
            break
        if st in ("failed", "cancelled") or time.monotonic() - t1 > LIMIT:
            raise RuntimeError(f"QEMU's migration to a file: {st}")
        time.sleep(0.05)
    stop(proc)
    print(f"QEMU:  booted to the answer in {(t1 - t0) * 1000:.0f} ms; migration file "
          f"{kib(f'{tmp}/qemu.mig')}")


def ember_load(i):
    proc, conn = start_ember(f"ember-load{i}")
    uds = f"{tmp}/load{i}.vsock"
    t0 = time.monotonic()
    req(conn, "PUT", "/snapshot/load", {
        "snapshot_path": f"{tmp}/ember.state",
        "mem_backend": {"backend_type": "File", "backend_path": f"{tmp}/ember.mem"},
        "resume_vm": True, "vsock_override": {"uds_path": uds}})
    t1 = time.monotonic()
    t2, failed = until_answer(ember_answer, uds, t0, proc)
    stop(proc)
    with open(f"{tmp}/ember-load{i}.console") as f:
        m = re.search(r"loaded in ([0-9]+) us, vCPUs running", f.read())
    return t1 - t0, t2 - t0, failed, int(m.group(1)) / 1e6 if m else float("nan")


def qemu_incoming(i):
    proc, mon = start_qemu(f"qemu-in{i}", "-incoming", "defer")
    # MIGRATION events for each state, "completed" included (before the clock starts).
    mon.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
    t0 = time.monotonic()
    mon.cmd("migrate-incoming", uri=f"exec:cat {tmp}/qemu.mig")
    # The source was stopped, so the loaded VM stays paused until cont (QEMU's global
    # state carries the run state).
    mon.wait_event("MIGRATION", status="completed")
    mon.cmd("cont")
    mon.wait_event("RESUME")
    t1 = time.monotonic()
    t2, failed = until_answer(qemu_answer, None, t0, proc)
    stop(proc)
    return t1 - t0, t2 - t0, failed


def wait_console(name, text, t0, proc):
    """Until the VMM's console has text (read every 5 ms: no cost to the guest)."""
    while True:
        with open(f"{tmp}/{name}.console", "rb") as f:
            if text in f.read():
                return
        if proc.poll() is not None or time.monotonic() - t0 > LIMIT:
            raise RuntimeError(f"{name}: no {text!r} on the console")
        time.sleep(0.005)


def ember_cold(i):
    proc, conn = start_ember(f"ember-cold{i}")
    uds = f"{tmp}/cold{i}.vsock"
    t0 = time.monotonic()
    boot_ember(conn, uds)
    t1 = time.monotonic()
    # Connects only once the listener said it listens: each one before would be refused by
    # the booting guest's kernel, work that slowed its boot (150-200 refusals a boot).
    wait_console(f"ember-cold{i}", b"listening on", t0, proc)
    t2, failed = until_answer(ember_answer, uds, t0, proc)
    stop(proc)
    return t1 - t0, t2 - t0, failed


def ms(v):
    return f"{v * 1000:8.1f}"


try:
    prepare()
    kinds = [("ember load", "to the 204", ember_load),
             ("QEMU incoming", "to RESUME", qemu_incoming),
             ("ember cold boot", "to the 204", ember_cold)]
    res = {k: [] for k, _, _ in kinds}
    for i in range(1, RUNS + 1):
        line = []
        for k, _, f in kinds:
            r = f(i)
            res[k].append(r)
            line.append(f"{k} {r[1] * 1000:.1f} ms ({r[0] * 1000:.1f}, {r[2]} retried)")
        print(f"run {i}: " + "; ".join(line), flush=True)

    print(f"\nLinux guest (1 vCPU, 128 MiB, vsock), {RUNS} runs interleaved: ms from the first "
          f"request until a connection to guest port {PORT} echoed a byte (median, min, max); "
          f"the median of the first step; connects retried (median)")
    print(f"{'':16} {'answer':>8} {'min':>8} {'max':>8}   {'step':>8} {'':11} {'retried':>7}")
    med = {}
    for k, step, _ in kinds:
        v = [r[1] for r in res[k]]
        med[k] = statistics.median(v)
        print(f"{k:16} {ms(med[k])} {ms(min(v))} {ms(max(v))}   "
              f"{ms(statistics.median(r[0] for r in res[k]))} {step:11} "
              f"{statistics.median(r[2] for r in res[k]):7}")
    inside = [r[3] for r in res["ember load"] if r[3] == r[3]]
    if inside:
        print(f"ember's own \"loaded in\" (request parsed to vCPUs running): "
              f"{statistics.median(inside) * 1000:.1f} ms median")
    r_cold = med["ember load"] / med["ember cold boot"]
    r_qemu = med["ember load"] / med["QEMU incoming"]
    print(f"ember load / ember cold boot: {r_cold:.3f} (target <= 0.1: "
          f"{'met' if r_cold <= 0.1 else 'NOT met'})")
    print(f"ember load / QEMU incoming:   {r_qemu:.3f} (target <= 0.5: "
          f"{'met' if r_qemu <= 0.5 else 'NOT met'})")
    print("QEMU: " + " ".join(QEMU) + " [-incoming defer]")
except Exception:
    # What the VMMs said, for the step that failed.
    for f in sorted(os.listdir(tmp)):
        if f.endswith(".console"):
            with open(f"{tmp}/{f}", errors="replace") as c:
                print(f"--- {f}\n" + "".join(c.readlines()[-20:]), file=sys.stderr)
    raise
finally:
    for p in list(procs):
        stop(p)
    shutil.rmtree(tmp, ignore_errors=True)
PY
