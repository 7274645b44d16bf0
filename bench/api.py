#!/usr/bin/env python3
"""Issue 6's benchmarks, on this host's /dev/kvm with the freestanding test guest:
  - ember start until the API socket accepts a connection
  - InstanceStart to the guest's boot-timer write (ember's Guest-boot-time line), configured
    as soon as the socket accepts, and with ember started 50 ms ahead (a runtime that keeps
    processes ready: ember builds the KVM VM, its PIT and guest memory meanwhile)
  - API request latency (GET / and PUT /machine-config on a kept-alive connection)
  - ember's own memory: RSS minus the guest-memory mapping, test guest halted, 128 MiB
  - creation rate: VMs configured through the API, started and exited per second, with
    as many in flight as the machine has cores
One Python process drives everything over the Unix socket, so no curl process is timed.
Usage: bench/api.py [RUNS]"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from emberapi import EMBER, GUEST, ROOT, UnixHTTP, request, start_ember


def configure_and_start(sock, boot_args, mem=128):
    conn = UnixHTTP(sock)
    request(conn, "PUT", "/boot-source",
            f'{{"kernel_image_path": "{GUEST}", "boot_args": "{boot_args}"}}')
    request(conn, "PUT", "/machine-config", f'{{"vcpu_count": 1, "mem_size_mib": {mem}}}')
    request(conn, "PUT", "/actions", '{"action_type": "InstanceStart"}')
    return conn


def stats(values):
    values = sorted(values)
    return f"{statistics.median(values):8.2f} {values[0]:8.2f} {values[-1]:8.2f}"


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    tmp = tempfile.mkdtemp()
    socket_ms, boot_ms, ahead_ms, vcpus_ms, get_ms, put_ms = [], [], [], [], [], []
    probe = os.path.join(ROOT, "build", "tests", "helpers", "start_to_socket")
    for i in range(runs):
        # Start-up through the small C prober: Python's own fork and polling would add
        # milliseconds to what is measured.
        sock = os.path.join(tmp, f"p{i}.sock")
        out = subprocess.run([probe, sock, "--", EMBER, "--api-sock", sock],
                             capture_output=True, text=True, check=True).stdout
        socket_ms.append(int(out.split()[0]) / 1000)
        for ahead, results in ((0, boot_ms), (0.05, ahead_ms)):
            # Debug level: ember logs when its vCPUs start, counted from InstanceStart.
            proc, sock, log, _ = start_ember(tmp, f"s{i}-{ahead}", "--boot-timer",
                                             *(["--level", "Debug"] if ahead else []))
            time.sleep(ahead)
            conn = configure_and_start(sock, "console=ttyS0")
            proc.wait(timeout=10)
            log.seek(0)
            out = log.read()
            m = re.search(r"Guest-boot-time = *(\d+) us", out)
            if not m:
                raise RuntimeError("no Guest-boot-time line")
            results.append(int(m.group(1)) / 1000)
            m = re.search(r"starting \d+ vCPUs, (\d+) us after the start", out)
            if ahead and m:
                vcpus_ms.append(int(m.group(1)) / 1000)
            log.close()

    proc, sock, log, _ = start_ember(tmp, "lat")
    conn = UnixHTTP(sock)
    for i in range(200):
        t = time.monotonic()
        request(conn, "GET", "/")
        get_ms.append((time.monotonic() - t) * 1000)
        t = time.monotonic()
        request(conn, "PUT", "/machine-config", '{"vcpu_count": 1, "mem_size_mib": 128}')
        put_ms.append((time.monotonic() - t) * 1000)
    # Memory: the same ember, now running the halted test guest.
    request(conn, "PUT", "/boot-source", f'{{"kernel_image_path": "{GUEST}", "boot_args": "halt"}}')
    request(conn, "PUT", "/actions", '{"action_type": "InstanceStart"}')
    time.sleep(0.3)
    total_kb, guest_kb, in_guest = 0, 0, False
    with open(f"/proc/{proc.pid}/smaps") as f:
        for line in f:
            head = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
            if head:
                size = int(head.group(2), 16) - int(head.group(1), 16)
                in_guest = size >= 128 << 20  # the guest RAM mapping (nothing else is as big)
            elif line.startswith("Rss:"):
                kb = int(line.split()[1])
                total_kb += kb
                if in_guest:
                    guest_kb += kb
    private_kb = 0
    with open(f"/proc/{proc.pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                private_kb += int(line.split()[1])
    proc.terminate()
    proc.wait()

    # Creation rate: a pool of VMs in flight, each configured through the API, started, and
    # replaced as soon as it exits.
    vms = max(runs * 2, 40)
    # Much of a start sleeps in KVM (see bench/README.md), so keep more VMs in flight than
    # there are cores.
    workers = int(os.environ.get("EMBER_BENCH_INFLIGHT", 4 * (os.cpu_count() or 2)))
    t0 = time.monotonic()
    started, finished, running = 0, 0, []
    while finished < vms:
        while len(running) < workers and started < vms:
            p, sock, log, _ = start_ember(tmp, f"c{started}")
            running.append((p, configure_and_start(sock, "console=ttyS0", 32), log))
            started += 1
        for entry in list(running):
            p, conn, log = entry
            if p.poll() is None:
                continue
            if p.returncode != 0:
                raise RuntimeError("a VM did not exit 0")
            log.close()
            conn.close()
            running.remove(entry)
            finished += 1
        time.sleep(0.0005)
    rate = vms / (time.monotonic() - t0)

    print(f"{'':44} {'median':>8} {'min':>8} {'max':>8}")
    print(f"{'start until the API socket accepts (ms)':44} {stats(socket_ms)}")
    print(f"{'InstanceStart to boot-timer write (ms)':44} {stats(boot_ms)}")
    print(f"{'  the same, ember started 50 ms ahead (ms)':44} {stats(ahead_ms)}")
    print(f"{'    of which InstanceStart to vCPUs running':44} {stats(vcpus_ms)}")
    print(f"{'GET / latency (ms)':44} {stats(get_ms)}")
    print(f"{'PUT /machine-config latency (ms)':44} {stats(put_ms)}")
    print(f"ember's own memory (RSS minus guest pages): {(total_kb - guest_kb) / 1024:.2f} MiB"
          f" (RSS {total_kb / 1024:.2f} MiB, guest pages {guest_kb / 1024:.2f} MiB);"
          f" not shared with other processes: {(private_kb - guest_kb) / 1024:.2f} MiB")
    print(f"creation rate: {rate:.1f} VMs/s ({vms} VMs through the API, {workers} at a time)")


if __name__ == "__main__":
    main()
