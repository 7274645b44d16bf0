#!/usr/bin/env bash
# Snapshot load to vCPUs running, on this host's /dev/kvm with the counting test guest
# (1 vCPU, 128 MiB), against a cold start of the same guest, interleaved in one run:
#   cold: PUT /machine-config, PUT /boot-source, InstanceStart, until its 204
#   File: PUT /snapshot/load (File backend, resume_vm) until its 204
#   Uffd: the same through build/ember-uffd-handler serving the memory file
# Each 204 comes once the vCPU threads run the guest. Every ember is fresh and started 50 ms
# before its first request (as a runtime keeps processes ready; ember builds the KVM VM
# meanwhile). Also shown: ember's own "loaded in N us" (request parsed to vCPUs running). The
# time to the guest's next line is not: the counting guest prints one every few hundred ms
# on PVM, which would only measure where in its loop it was paused; that the vCPU ran is
# checked instead by the handler's count of pages it served.
# One Python process times everything over the Unix sockets: no curl process is timed.
# Usage: bench/snapshot-load.sh [RUNS] (default 15; about 15 s)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-15}
for f in build/ember build/ember-uffd-handler build/tests/guest.elf; do
	[ -x "$f" ] || [ -f "$f" ] || { echo "$f missing: run 'make'" >&2; exit 1; }
done
exec python3 - "$runs" <<'PY'
import os, re, shutil, statistics, subprocess, sys, tempfile, time
sys.path.insert(0, "bench")
from emberapi import EMBER, GUEST, UnixHTTP, request, start_ember as fresh_ember

RUNS = int(sys.argv[1])
HANDLER = os.path.abspath("build/ember-uffd-handler")
tmp = tempfile.mkdtemp(prefix="ember-snapbench.")


def req(conn, method, path, body):
    request(conn, method, path, body)


def start_ember(name):
    proc, sock, log, _ = fresh_ember(tmp, name)
    time.sleep(0.05)
    return proc, UnixHTTP(sock), log.name


def stop(proc):
    proc.terminate()
    proc.wait()


def first_line_ms(out, t_ready, limit=5.0):
    """ms from t_ready until the guest's first count line appears in out."""
    while time.monotonic() - t_ready < limit:
        with open(out, "rb") as f:
            if re.search(rb"count=[0-9]+\r", f.read()):
                return (time.monotonic() - t_ready) * 1000
        time.sleep(0.0005)
    raise RuntimeError(f"no guest output in {out}")


def loaded_us(out):
    with open(out) as f:
        m = re.search(r"loaded in ([0-9]+) us, vCPUs running", f.read())
    return int(m.group(1)) / 1000 if m else float("nan")


def make_snapshot():
    proc, conn, out = start_ember("make")
    req(conn, "PUT", "/machine-config", '{"vcpu_count": 1, "mem_size_mib": 128}')
    req(conn, "PUT", "/boot-source", f'{{"kernel_image_path": "{GUEST}", "boot_args": "count"}}')
    req(conn, "PUT", "/actions", '{"action_type": "InstanceStart"}')
    first_line_ms(out, time.monotonic())
    req(conn, "PATCH", "/vm", '{"state": "Paused"}')
    req(conn, "PUT", "/snapshot/create", f'{{"snapshot_path": "{tmp}/s.state", '
        f'"mem_file_path": "{tmp}/s.mem", "snapshot_type": "Full"}}')
    stop(proc)


def cold():
    proc, conn, out = start_ember("cold")
    t0 = time.monotonic()
    req(conn, "PUT", "/machine-config", '{"vcpu_count": 1, "mem_size_mib": 128}')
    req(conn, "PUT", "/boot-source", f'{{"kernel_image_path": "{GUEST}", "boot_args": "count"}}')
    req(conn, "PUT", "/actions", '{"action_type": "InstanceStart"}')
    t1 = time.monotonic()
    stop(proc)
    return (t1 - t0) * 1000, float("nan")


def load(backend):
    handler = None
    path = f"{tmp}/s.mem"
    if backend == "Uffd":
        path = f"{tmp}/h.sock"
        if os.path.exists(path):
            os.unlink(path)
        handler = subprocess.Popen([HANDLER, path, f"{tmp}/s.mem"],
                                   stderr=open(f"{tmp}/handler.out", "w"))
        while not os.path.exists(path):
            if handler.poll() is not None:
                raise RuntimeError("the handler exited")
            time.sleep(0.0005)
    proc, conn, out = start_ember(backend)
    t0 = time.monotonic()
    req(conn, "PUT", "/snapshot/load", f'{{"snapshot_path": "{tmp}/s.state", "mem_backend": '
        f'{{"backend_type": "{backend}", "backend_path": "{path}"}}, "resume_vm": true}}')
    t1 = time.monotonic()
    if handler:  # the vCPU ran: let it fault in what it touches
        time.sleep(0.02)
    stop(proc)
    if handler:
        handler.wait(timeout=5)
        with open(f"{tmp}/handler.out") as f:
            if not re.search(r"done: [1-9][0-9]* faults served", f.read()):
                raise RuntimeError("the handler served no page")
    return (t1 - t0) * 1000, loaded_us(out)


try:
    make_snapshot()
    results = {"cold": [], "File": [], "Uffd": []}
    for _ in range(RUNS):
        results["cold"].append(cold())
        results["File"].append(load("File"))
        results["Uffd"].append(load("Uffd"))

    def med(rows, i):
        v = [r[i] for r in rows if r[i] == r[i]]
        return f"{statistics.median(v):8.2f}" if v else "     n/a"

    def spread(rows, i):
        v = sorted(r[i] for r in rows)
        return f"{v[0]:.2f}-{v[-1]:.2f}"

    print(f"test guest, 1 vCPU, 128 MiB, {RUNS} runs interleaved, medians in ms")
    print(f"{'':28} {'to 204':>8} {'(range)':>13} {'in ember':>8}")
    names = {"cold": "cold start (config+start)", "File": "snapshot load, File",
             "Uffd": "snapshot load, Uffd"}
    for k, rows in results.items():
        print(f"{names[k]:28} {med(rows, 0)} {spread(rows, 0):>13} {med(rows, 1)}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
PY
