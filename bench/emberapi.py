"""What the Python benchmarks share: ember's API over its Unix socket, and a fresh ember.
Imported by bench/api.py and by the Python inside bench/snapshot-load.sh and
bench/snapshot-clones.sh (run from the repository root)."""
import http.client
import os
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMBER = os.path.join(ROOT, "build", "ember")
GUEST = os.path.join(ROOT, "build", "tests", "guest.elf")


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def request(conn, method, path, body=None):
    """The reply's body; an error for any status of 300 or more."""
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data!r}")
    return data


def start_ember(tmp, name, *args):
    """A fresh ember on tmp/NAME.sock, output in tmp/NAME.out: (process, socket path, log
    file, ms until the socket accepted)."""
    sock = os.path.join(tmp, name + ".sock")
    # A new log file, not the last run's truncated: ext4 flushes a file truncated and
    # written again, and ember's log writes then waited on it (1.3 against 3.1 ms median
    # in bench/snapshot-load.sh's File row).
    for p in (sock, os.path.join(tmp, name + ".out")):
        if os.path.exists(p):
            os.unlink(p)
    log = open(os.path.join(tmp, name + ".out"), "w+")
    t0 = time.monotonic()
    proc = subprocess.Popen([EMBER, "--api-sock", sock, *args], stdout=log, stderr=log)
    wait_accepting(sock, proc)
    return proc, sock, log, (time.monotonic() - t0) * 1000


def wait_accepting(path, proc, limit=10, poll=0.00002):
    """Until the Unix socket at path accepts a connection; an error when proc exits first
    or limit seconds pass."""
    t0 = time.monotonic()
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() - t0 > limit:
                raise RuntimeError(f"{path} never accepted")
            time.sleep(poll)
