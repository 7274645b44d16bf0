#!/usr/bin/env bash
# Memory per clone: K embers load one Full snapshot at once (File backend, resume_vm) on this
# host's /dev/kvm, with the dirty-pages test guest (256 MiB, 1 vCPU), which rewrites the same
# N pages at every count, so that each clone dirties N pages of its copy-on-write mapping
# of the memory file soon after the load. For each clone, from /proc/PID/smaps:
#   guest private: Private_Dirty of its guest memory mapping (the pages it wrote since the load)
#   own private:   every other private page of the process (ember's heap, stacks, data)
#   PSS:           its proportional share of everything it maps (the memory file's clean pages
#                  and the binary's text are shared by all clones)
# and over the K clones the sum of PSS against the sum of RSS. The claim checked: a clone
# costs the pages its guest dirtied plus ember's own memory, nothing per clone for what it
# only read. Usage: bench/snapshot-clones.sh [K] [N...] (default 8 clones, N = 256 and 4096;
# about 10 s)
set -euo pipefail
cd "$(dirname "$0")/.."
for f in build/ember build/tests/guest.elf; do
	[ -f "$f" ] || { echo "$f missing: run 'make'" >&2; exit 1; }
done
exec python3 - "$@" <<'PY'
import os, re, shutil, statistics, subprocess, sys, tempfile, time
sys.path.insert(0, "bench")
from emberapi import EMBER, GUEST, UnixHTTP, request, start_ember as fresh_ember

K = int(sys.argv[1]) if len(sys.argv) > 1 else 8
NS = [int(a) for a in sys.argv[2:]] or [256, 4096]
tmp = tempfile.mkdtemp(prefix="ember-clonebench.", dir=os.path.abspath("build"))
procs = []


def req(conn, method, path, body):
    request(conn, method, path, body)


def start_ember(name):
    proc, sock, log, _ = fresh_ember(tmp, name)
    procs.append(proc)
    return proc, UnixHTTP(sock, timeout=30), log.name


def counts(out):
    with open(out, "rb") as f:
        return [int(c) for c in re.findall(rb"count=([0-9]+)\r", f.read())]


def wait_count(out, above, limit=20.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        c = counts(out)
        if c and c[-1] > above:
            return c[-1]
        time.sleep(0.01)
    raise RuntimeError(f"{out}: the count did not pass {above}")


def smaps(pid, mem_path):
    """(guest private kB, own private kB, PSS kB, RSS kB) of process pid."""
    guest = own = pss = rss = 0
    in_guest = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                in_guest = line.rstrip().endswith(mem_path)
                continue
            key, _, val = line.partition(":")
            if key not in ("Private_Dirty", "Private_Clean", "Pss", "Rss"):
                continue
            kb = int(val.split()[0])
            if key == "Pss":
                pss += kb
            elif key == "Rss":
                rss += kb
            elif in_guest and key == "Private_Dirty":
                guest += kb
            else:
                own += kb
    return guest, own, pss, rss


def one(n):
    state, mem = f"{tmp}/s{n}.state", f"{tmp}/s{n}.mem"
    proc, conn, out = start_ember(f"make{n}")
    req(conn, "PUT", "/machine-config", '{"vcpu_count": 1, "mem_size_mib": 256}')
    req(conn, "PUT", "/boot-source",
        f'{{"kernel_image_path": "{GUEST}", "boot_args": "dirty-pages={n}"}}')
    req(conn, "PUT", "/actions", '{"action_type": "InstanceStart"}')
    wait_count(out, 2)
    req(conn, "PATCH", "/vm", '{"state": "Paused"}')
    req(conn, "PUT", "/snapshot/create", f'{{"snapshot_path": "{state}", '
        f'"mem_file_path": "{mem}", "snapshot_type": "Full"}}')
    proc.terminate()
    proc.wait()
    saved = counts(out)[-1]
    data_kb = int(subprocess.check_output(["du", "-k", mem]).split()[0])
    clones = [start_ember(f"clone{n}-{i}") for i in range(K)]
    for _, c, _ in clones:
        req(c, "PUT", "/snapshot/load", f'{{"snapshot_path": "{state}", "mem_backend": '
            f'{{"backend_type": "File", "backend_path": "{mem}"}}, "resume_vm": true}}')
    # Two counts after the load: every one of the N pages was written at least once.
    for _, _, o in clones:
        wait_count(o, saved + 2)
    rows = [smaps(p.pid, mem) for p, _, _ in clones]
    for p, _, _ in clones:
        p.terminate()
        p.wait()
    med = lambda i: statistics.median(r[i] for r in rows)
    print(f"N = {n} pages ({n * 4 / 1024:.1f} MiB) written at each count; memory file "
          f"{data_kb / 1024:.1f} MiB of data")
    print(f"  per clone, median of {K}: guest private {med(0) / 1024:.2f} MiB "
          f"(the N pages: {n * 4 / 1024:.2f} MiB), own private {med(1) / 1024:.2f} MiB, "
          f"PSS {med(2) / 1024:.2f} MiB, RSS {med(3) / 1024:.2f} MiB")
    tp, tr = sum(r[2] for r in rows), sum(r[3] for r in rows)
    print(f"  {K} clones: PSS {tp / 1024:.1f} MiB in all, RSS {tr / 1024:.1f} MiB in all "
          f"(PSS/RSS {tp / tr:.2f})")


try:
    print(f"{K} clones of the dirty-pages test guest, 256 MiB, File backend, this host; "
          f"load average {os.getloadavg()[0]:.2f}")
    for n in NS:
        one(n)
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
    shutil.rmtree(tmp, ignore_errors=True)
PY
