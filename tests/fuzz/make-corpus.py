#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets to tests/fuzz/corpus/<target>/seed-*.

The seeds are the valid cases each target must get through (a read and a write request, a
frame each way, a vsock connection either way, every API endpoint), from which the fuzzer
mutates its way to the invalid ones. Inputs that once crashed a target are kept next to them
as crash-* files and are not written here. Run it again after changing a format; the
output is deterministic."""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# --- the device targets' script (tests/fuzz/fuzz_dev.h) ---------------------------------
WRITE, READ, INIT, NOTIFY, POKE, POLL, HOST, AVAIL = range(8)
NUM = 16
DATA = 0xC00
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
ALL_FEATURES = 0xFFFFFFFFFFFFFFFF


def ring(q):
    return 0x400 * q


class Mem:
    """The guest memory image: only as long as its last written byte."""

    def __init__(self):
        self.b = bytearray()

    def put(self, gpa, data):
        if len(self.b) < gpa + len(data):
            self.b.extend(bytes(gpa + len(data) - len(self.b)))
        self.b[gpa:gpa + len(data)] = data

    def desc(self, q, i, addr, length, flags=0, nxt=0):
        self.put(ring(q) + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def chain(self, q, first, bufs):
        """Descriptors first, first+1, ... for bufs [(addr, len, flags)], linked."""
        for k, (addr, length, flags) in enumerate(bufs):
            more = k + 1 < len(bufs)
            self.desc(q, first + k, addr, length, flags | (F_NEXT if more else 0),
                      first + k + 1 if more else 0)


def script(*ops):
    out = bytearray()
    for op in ops:
        out += op
    return bytes(out)


def op_init(features=ALL_FEATURES):
    return struct.pack("<BQ", INIT, features)


def op_avail(q, head):
    return struct.pack("<BBB", AVAIL, q, head)


def op_notify(q):
    return struct.pack("<BB", NOTIFY, q)


def op_write(reg, value):
    return struct.pack("<BBI", WRITE, reg // 4, value)


def op_read(off, size_log2=2):
    return struct.pack("<BHB", READ, off, size_log2)


def op_poke(off, data):
    return struct.pack("<BHB", POKE, off, len(data)) + data


def device_input(prefix, ops, mem):
    s = prefix + script(*ops)
    return struct.pack("<H", len(s)) + s + bytes(mem.b)


# --- writing ------------------------------------------------------------------------------
def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def blk():
    hdr = lambda t, sector: struct.pack("<IIQ", t, 0, sector)
    # A read of sector 1 into 512 bytes, status after it.
    m = Mem()
    m.put(DATA, hdr(0, 1))
    m.chain(0, 0, [(DATA, 16, 0), (DATA + 0x100, 512, F_WRITE), (DATA + 0x300, 1, F_WRITE)])
    write("fuzz_blk", "read", device_input(b"\x02", [op_init(), op_avail(0, 0), op_notify(0)], m))
    # A write of two sectors, then a flush, then GET_ID: three chains.
    m = Mem()
    m.put(DATA, hdr(1, 2))
    m.put(DATA + 0x10, hdr(4, 0))
    m.put(DATA + 0x20, hdr(8, 0))
    m.put(DATA + 0x100, bytes(range(256)) * 4)
    m.chain(0, 0, [(DATA, 16, 0), (DATA + 0x100, 1024, 0), (DATA + 0x500, 1, F_WRITE)])
    m.chain(0, 3, [(DATA + 0x10, 16, 0), (DATA + 0x501, 1, F_WRITE)])
    m.chain(0, 5, [(DATA + 0x20, 16, 0), (DATA + 0x510, 20, F_WRITE), (DATA + 0x502, 1, F_WRITE)])
    ops = [op_init(), op_avail(0, 0), op_avail(0, 3), op_avail(0, 5), op_notify(0)]
    write("fuzz_blk", "write-flush-id", device_input(b"\x02", ops, m))
    # A read through an indirect table at DATA + 0x40.
    m = Mem()
    m.put(DATA, hdr(0, 0))
    m.desc(0, 0, DATA + 0x40, 48, F_INDIRECT)
    for i, (addr, length, flags) in enumerate(
            [(DATA, 16, F_NEXT), (DATA + 0x100, 512, F_WRITE | F_NEXT), (DATA + 0x300, 1, F_WRITE)]):
        m.put(DATA + 0x40 + 16 * i, struct.pack("<QIHH", addr, length, flags, i + 1 if flags & F_NEXT else 0))
    write("fuzz_blk", "indirect", device_input(b"\x00", [op_init(), op_avail(0, 0), op_notify(0)], m))


def rng():
    # Two reads: one buffer, then a chain of two; the first byte asks for no limiter.
    m = Mem()
    m.chain(0, 0, [(DATA, 64, F_WRITE)])
    m.chain(0, 1, [(DATA + 0x100, 10, F_WRITE), (DATA + 0x200, 300, F_WRITE)])
    ops = [op_init(), op_avail(0, 0), op_avail(0, 1), op_notify(0)]
    write("fuzz_rng", "two-reads", device_input(b"\x00", ops, m))
    # The same under a byte bucket of 100 (first byte 1, then the size): the second waits.
    write("fuzz_rng", "throttled", device_input(b"\x01\x64\x00", ops, m))


def balloon():
    # Queue i's rings at ring(i): inflate 0, deflate 1, statistics 2, reporting 3 with every
    # feature on (first byte 7). Buffers after the last ring, at 0x1000.
    buf = 0x1000
    m = Mem()
    # An inflate of three PFNs (pages 0xd-0xf of the 64 KiB memory), a deflate of one.
    m.put(buf, struct.pack("<3I", 0xD, 0xE, 0xF))
    m.chain(0, 0, [(buf, 12, 0)])
    m.put(buf + 0x20, struct.pack("<I", 0xD))
    m.chain(1, 0, [(buf + 0x20, 4, 0)])
    # Statistics: total and free memory, held until the host asks (a new interval).
    m.put(buf + 0x40, struct.pack("<HQHQ", 5, 64 << 10, 4, 16 << 10))
    m.chain(2, 0, [(buf + 0x40, 20, 0)])
    # A free page report of two pages.
    m.chain(3, 0, [(0xB000, 0x2000, F_WRITE)])
    # The driver writes "actual" (configuration offset 4, register 0x104).
    ops = [op_init(), op_avail(0, 0), op_notify(0), op_avail(1, 0), op_notify(1),
           op_avail(2, 0), op_notify(2), op_avail(3, 0), op_notify(3), op_write(0x104, 3),
           bytes([HOST, 1, 2, HOST, 2, HOST, 3, HOST, 0]) + struct.pack("<H", 32)]
    write("fuzz_balloon", "all-queues", device_input(b"\x07", ops, m))
    # Without statistics or reporting: the two queues only.
    ops = [op_init(), op_avail(0, 0), op_notify(0), op_avail(1, 0), op_notify(1),
           op_read(0x100), op_read(0x104)]
    write("fuzz_balloon", "inflate-deflate", device_input(b"\x02", ops, m))
    # A state block restored onto the running device (HOST 4): version 1, target 8 pages,
    # actual 3, interval 1 s, the statistics buffer (head 0) held, total memory reported.
    state = struct.pack("<IIIIBHI", 1, 8, 3, 1, 1, 0, 1 << 5) + struct.pack("<10Q", *([0] * 5 + [64 << 10] + [0] * 4))
    ops = [op_init(), op_avail(2, 0), op_notify(2), bytes([HOST, 4, len(state)]) + state,
           bytes([HOST, 2, HOST, 1, 3])]
    write("fuzz_balloon", "restore", device_input(b"\x01", ops, m))
    # Free page hinting alone (first byte 8): its queue is the third. The host starts a run
    # (HOST 5, acknowledge_on_stop), the driver sends the run's id (2), a hint of two pages
    # and STOP (which the host answers with DONE); then a second run, stopped by the host
    # (HOST 6), and the state saved and restored (HOST 3).
    m = Mem()
    m.put(buf, struct.pack("<I", 2))
    m.put(buf + 0x10, struct.pack("<I", 0))
    m.put(buf + 0x20, struct.pack("<I", 3))
    m.chain(2, 0, [(buf, 4, 0)])
    m.chain(2, 1, [(0xB000, 0x2000, F_WRITE)])
    m.chain(2, 2, [(buf + 0x10, 4, 0)])
    m.chain(2, 3, [(buf + 0x20, 4, 0)])
    ops = [op_init(), bytes([HOST, 5, 1]), op_avail(2, 0), op_avail(2, 1), op_avail(2, 2),
           op_notify(2), op_read(0x108), bytes([HOST, 5, 0]), op_avail(2, 3), op_notify(2),
           bytes([HOST, 6, HOST, 3, HOST, 2])]
    write("fuzz_balloon", "hinting", device_input(b"\x08", ops, m))


def virtio_mmio():
    # Linux's probe: magic, version, device id, features; then set-up by hand, register by
    # register, a request, a reset, and the reads of the configuration space.
    ops = [op_read(0x000), op_read(0x004), op_read(0x008), op_read(0x00C),
           op_write(0x070, 0), op_write(0x070, 1), op_write(0x070, 3),
           op_write(0x014, 0), op_read(0x010), op_write(0x014, 1), op_read(0x010),
           op_write(0x024, 1), op_write(0x020, 1), op_write(0x024, 0), op_write(0x020, 0),
           op_write(0x070, 11), op_read(0x070),
           op_write(0x030, 0), op_read(0x034), op_write(0x038, NUM),
           op_write(0x080, ring(0)), op_write(0x084, 0), op_write(0x090, ring(0) + 0x100),
           op_write(0x094, 0), op_write(0x0A0, ring(0) + 0x200), op_write(0x0A4, 0),
           op_write(0x044, 1), op_read(0x044), op_write(0x070, 15),
           op_avail(0, 0), op_write(0x050, 0), bytes([POLL]), op_read(0x060), op_write(0x064, 1),
           op_read(0x100, 3), op_read(0x108, 2), op_read(0x0FC), op_read(0x0B0),
           op_write(0x070, 0), op_read(0x070)]
    m = Mem()
    m.put(DATA, struct.pack("<IIQ", 0, 0, 0))
    m.chain(0, 0, [(DATA, 16, 0), (DATA + 0x100, 512, F_WRITE), (DATA + 0x300, 1, F_WRITE)])
    write("fuzz_virtio_mmio", "probe-setup-request-reset", device_input(b"", ops, m))
    # Odd sizes and offsets: a byte write to STATUS, a 2-byte read of QueueNumMax.
    ops = [op_init(), bytes([HOST]) + struct.pack("<HQB", 0x070, 0, 0), op_read(0x036, 1),
           op_read(0x101, 0), op_write(0x030, 7), op_read(0x034), op_write(0x044, 1)]
    write("fuzz_virtio_mmio", "odd-accesses", device_input(b"", ops, Mem()))


def net():
    NET_HDR = 12
    F_MRG_RXBUF = 1 << 15
    feats = (1 << 32) | (1 << 29) | (1 << 28) | 0xFFFF
    # Two receive buffers, a frame from the host; a frame from the guest.
    m = Mem()
    m.desc(0, 0, DATA, 1526, F_WRITE)
    m.desc(0, 1, DATA + 0x600, 1526, F_WRITE)
    frame = bytes(NET_HDR) + bytes(range(60))
    m.put(DATA + 0xC00, frame)
    m.chain(1, 0, [(DATA + 0xC00, NET_HDR, 0), (DATA + 0xC00 + NET_HDR, 60, 0)])
    host_send = bytes([HOST, 1]) + struct.pack("<H", len(frame)) + frame
    ops = [op_init(feats), op_avail(0, 0), op_avail(0, 1), op_notify(0), host_send,
           bytes([POLL]), op_avail(1, 0), op_notify(1), bytes([HOST, 0])]
    write("fuzz_net", "rx-tx", device_input(b"\x03" + struct.pack("<H", 1500), ops, m))
    # A frame larger than one buffer with merged buffers off and on, and rate limiters.
    m = Mem()
    for i in range(4):
        m.desc(0, i, DATA + 0x100 * i, 256, F_WRITE)
    big = bytes(NET_HDR) + bytes(range(256)) * 3
    host_send = bytes([HOST, 1]) + struct.pack("<H", len(big)) + big
    ops = [op_init(feats | F_MRG_RXBUF), host_send] + [op_avail(0, i) for i in range(4)] + [
        op_notify(0), bytes([POLL])]
    write("fuzz_net", "merged", device_input(b"\x0c" + struct.pack("<HB", 100, 1), ops, m))


def vsock():
    OP_REQUEST, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST = range(1, 8)

    def pkt(op, src_port, dst_port, payload=b"", buf_alloc=65536, fwd_cnt=0, flags=0):
        return struct.pack("<QQIIIHHIII", 3, 2, src_port, dst_port, len(payload), 1, op,
                           flags, buf_alloc, fwd_cnt) + payload

    feats = (1 << 32) | (1 << 29) | (1 << 28)
    # Guest connects to host port 52 (a host listener there), sends data, shuts down.
    m = Mem()
    tx = [pkt(OP_REQUEST, 1000, 52), pkt(OP_RW, 1000, 52, b"hello host\n"),
          pkt(OP_SHUTDOWN, 1000, 52, flags=3)]
    at = DATA + 0x400
    for i, p in enumerate(tx):
        m.put(at, p)
        m.desc(1, i, at, len(p))
        at += 0x80
    for i in range(4):
        m.desc(0, i, DATA + 0x100 * i, 256, F_WRITE)
    ops = [op_init(feats), bytes([HOST, 5, 52])] + [op_avail(0, i) for i in range(4)] + [
        op_notify(0), op_avail(1, 0), op_notify(1), bytes([POLL, HOST, 5, 0]),
        op_avail(1, 1), op_notify(1), bytes([HOST, 4 | (0 << 3), POLL]),
        op_avail(1, 2), op_notify(1), bytes([POLL])]
    write("fuzz_vsock", "guest-connects", device_input(b"", ops, m))
    # A host process connects with "CONNECT 1234\n"; the guest answers and both send.
    m = Mem()
    for i in range(4):
        m.desc(0, i, DATA + 0x100 * i, 256, F_WRITE)
    tx = [pkt(OP_RESPONSE, 1234, 1 << 30), pkt(OP_RW, 1234, 1 << 30, b"hi from guest"),
          pkt(OP_CREDIT_REQUEST, 1234, 1 << 30), pkt(OP_RST, 1234, 1 << 30)]
    at = DATA + 0x400
    for i, p in enumerate(tx):
        m.put(at, p)
        m.desc(1, i, at, len(p))
        at += 0x80
    line = b"CONNECT 1234\n"
    data = b"data from the host"
    ops = [op_init(feats)] + [op_avail(0, i) for i in range(4)] + [
        op_notify(0), bytes([HOST, 0, POLL, HOST, 1, len(line)]) + line, bytes([POLL]),
        op_avail(1, 0), op_notify(1), bytes([HOST, 1, len(data)]) + data, bytes([POLL]),
        op_avail(1, 1), op_avail(1, 2), op_notify(1), bytes([HOST, 4, HOST, 2, POLL]),
        op_avail(1, 3), op_notify(1), bytes([HOST, 3, POLL])]
    write("fuzz_vsock", "host-connects", device_input(b"", ops, m))
    # Bad CONNECT lines: no number, too long, no newline before the close.
    for i, line in enumerate([b"CONNECT x\n", b"CONNECT 99999999999999999999\n", b"CONN"]):
        ops = [op_init(feats), bytes([HOST, 0, POLL, HOST, 1, len(line)]) + line,
               bytes([POLL, HOST, 2, POLL])]
        write("fuzz_vsock", "bad-line-%d" % i, device_input(b"", ops, Mem()))


def http():
    reqs = [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"PUT /drives/root HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
        b"Expect: 100-continue\r\n\r\n{\"a\": \"bcd\"}",
        b"PATCH /vm HTTP/1.0\nConnection: keep-alive\ncontent-length:  2 \n\n{}"
        b"GET /vm/config?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
    ]
    for i, r in enumerate(reqs):
        write("fuzz_http", "req-%d" % i, bytes([i * 37 % 256]) + r)


def router():
    paths = ["/", "/version", "/machine-config", "/boot-source", "/drives/rootfs", "/drives/d1",
             "/network-interfaces/eth0", "/network-interfaces/eth1", "/vsock", "/logger",
             "/metrics", "/serial", "/actions", "/vm", "/vm/config", "/drives", "/drives/", "/mmds",
             "/balloon", "/balloon/statistics", "/balloon/hinting/start", "/balloon/hinting/stop",
             "/balloon/hinting/status"]
    GET, PUT, PATCH = 0, 1, 2
    START = b"\xff"

    def req(method, path, body=None):
        b = b"" if body is None else json.dumps(body).encode()
        return bytes([method | (0x80 if body is None else 0), paths.index(path)]) + \
            struct.pack("<H", len(b)) + b

    rl = {"bandwidth": {"size": 1000, "one_time_burst": 10, "refill_time": 100},
          "ops": {"size": 10, "refill_time": 1000}}
    configure = [
        req(GET, "/"), req(GET, "/version"),
        req(PUT, "/machine-config", {"vcpu_count": 2, "mem_size_mib": 64, "smt": False}),
        req(PATCH, "/machine-config", {"vcpu_count": 1}), req(GET, "/machine-config"),
        req(PUT, "/boot-source", {"kernel_image_path": "/k", "initrd_path": "/i",
                                  "boot_args": "console=ttyS0"}),
        req(PUT, "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": "/null",
                                    "is_root_device": True, "is_read_only": True,
                                    "cache_type": "Writeback", "io_engine": "Sync",
                                    "rate_limiter": rl}),
        req(PUT, "/drives/d1", {"drive_id": "d1", "path_on_host": "/null",
                                "is_root_device": False, "is_read_only": False,
                                "partuuid": "0eaa91a0-01"}),
        req(PATCH, "/drives/d1", {"drive_id": "d1", "rate_limiter": rl}),
        req(PUT, "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0",
                                              "guest_mac": "06:00:ac:10:00:02",
                                              "rx_rate_limiter": rl, "tx_rate_limiter": rl}),
        req(PUT, "/vsock", {"guest_cid": 3, "uds_path": "/v.sock"}),
        req(PUT, "/serial", {"serial_out_path": "/console"}),
        req(PUT, "/logger", {"log_path": "/log", "level": "Debug", "show_level": True,
                             "show_log_origin": True}),
        req(PUT, "/metrics", {"metrics_path": "/metrics"}),
        req(PUT, "/balloon", {"amount_mib": 0, "deflate_on_oom": True,
                              "stats_polling_interval_s": 1, "free_page_reporting": True}),
        req(GET, "/balloon"), req(GET, "/balloon/statistics"),
        req(GET, "/vm/config"),
    ]
    write("fuzz_router", "configure", b"".join(configure))
    running = [
        START, req(GET, "/"), req(PATCH, "/drives/d1", {"drive_id": "d1", "rate_limiter": rl}),
        req(PATCH, "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": "/null"}),
        req(PUT, "/drives/d1", {"drive_id": "d1", "path_on_host": "/null",
                                "is_root_device": False, "is_read_only": False}),
        req(PATCH, "/vm", {"state": "Paused"}), req(PATCH, "/vm", {"state": "Resumed"}),
        req(PUT, "/actions", {"action_type": "FlushMetrics"}),
        req(PUT, "/actions", {"action_type": "SendCtrlAltDel"}),
        req(PUT, "/machine-config", {"vcpu_count": 2, "mem_size_mib": 64}),
        req(GET, "/vm/config"), req(GET, "/machine-config"),
        req(PATCH, "/balloon", {"amount_mib": 4}), req(GET, "/balloon"),
        req(PATCH, "/balloon/statistics", {"stats_polling_interval_s": 2}),
        req(GET, "/balloon/statistics"),
    ]
    write("fuzz_router", "start-then-running",
          b"".join(configure[6:8] + configure[10:11] + configure[13:15] + running))
    bad = [req(PUT, "/actions", {"action_type": "InstanceStart"}),
           req(PUT, "/machine-config", {"vcpu_count": 0}), req(PATCH, "/vm", {"state": "x"}),
           req(GET, "/actions"), req(PUT, "/drives/rootfs", None),
           bytes([PUT, 200]) + b"/drives/a/b\0" + struct.pack("<H", 2) + b"{}"]
    write("fuzz_router", "refusals", b"".join(bad))
    # Free page hinting: configured, then its commands without and with a body, and its
    # status, on the running VM (the device has no driver: the commands are refused).
    hinting = [
        req(PUT, "/balloon", {"amount_mib": 0, "deflate_on_oom": False,
                              "free_page_hinting": True}),
        req(PATCH, "/balloon/hinting/start"), START, req(GET, "/balloon/hinting/status"),
        req(PATCH, "/balloon/hinting/start"),
        req(PATCH, "/balloon/hinting/start", {"acknowledge_on_stop": False}),
        req(PATCH, "/balloon/hinting/stop"), req(GET, "/balloon"), req(GET, "/vm/config"),
    ]
    write("fuzz_router", "hinting", b"".join(hinting))


def config():
    full = {
        "boot-source": {"kernel_image_path": "/k", "initrd_path": "/i", "boot_args": "console=ttyS0"},
        "machine-config": {"vcpu_count": 2, "mem_size_mib": 256, "smt": False},
        "drives": [{"drive_id": "rootfs", "path_on_host": "/r", "is_root_device": True,
                    "is_read_only": False, "rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1}}},
                   {"drive_id": "d2", "path_on_host": "/d", "is_root_device": False,
                    "is_read_only": True, "io_engine": "Async", "cache_type": "Unsafe"}],
        "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0",
                                "guest_mac": "06:00:00:00:00:01",
                                "rx_rate_limiter": {"ops": {"size": 5, "one_time_burst": 2, "refill_time": 10}}}],
        "vsock": {"guest_cid": 3, "uds_path": "/v.sock"},
        "serial": {"serial_out_path": "/c"},
    }
    write("fuzz_config", "full", json.dumps(full, indent=1).encode())
    write("fuzz_config", "minimal", b'{"boot-source": {"kernel_image_path": "k"}}')
    write("fuzz_config", "logger", b'{"logger": {"log_path": "/l"}, "machine-config": {"vcpu_count": 3, "mem_size_mib": 1, "smt": true}}')


def loader():
    # A vmlinux: one PT_LOAD of 16 bytes at 1 MiB, entry there; a PT_NOTE "Linux".
    note = struct.pack("<III", 6, 4, 1) + b"Linux\0\0\0" + b"\x01\0\0\0"
    ehdr_len, phdr_len = 64, 56
    code_off = ehdr_len + 2 * phdr_len
    note_off = code_off + 16
    eh = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, 0x100000, ehdr_len, 0, 0, ehdr_len, phdr_len, 2, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, code_off, 0x100000, 0x100000, 16, 0x1000, 0x1000)
    pnote = struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(note), len(note), 4)
    write("fuzz_loader", "vmlinux", eh + load + pnote + b"\xf4" * 16 + note)
    # A bzImage: one setup sector, protocol 2.15, 64-bit entry, 512 bytes at 2 MiB.
    hdr = bytearray(1024)
    hdr[0x1F1] = 1
    struct.pack_into("<I", hdr, 0x1F4, 512 // 16)
    hdr[0x201] = 0x6A
    hdr[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", hdr, 0x206, 0x20F)
    struct.pack_into("<I", hdr, 0x22C, 0x7FFFFFFF)
    struct.pack_into("<H", hdr, 0x236, 1)
    struct.pack_into("<I", hdr, 0x238, 255)
    struct.pack_into("<Q", hdr, 0x258, 0x200000)
    struct.pack_into("<I", hdr, 0x260, 0x1000)
    write("fuzz_loader", "bzimage", bytes(hdr) + b"\xf4" * 512)


def rate_limiter():
    def bucket(size, burst, refill):  # widths: 8 bytes each
        return bytes([0x3F]) + struct.pack("<QQQ", size, burst, refill)

    def op(dt, nbytes, nops=1, flags=0):  # 8-byte dt and bytes
        return bytes([3 | (3 << 2) | (nops << 4) | flags]) + struct.pack("<QQ", dt, nbytes)

    steps = b"".join(op(10**6 * i, 500 * i) for i in range(6)) + op(0, 10**6, flags=0x40)
    write("fuzz_rate_limiter", "both", bucket(1000, 100, 100) + bucket(10, 0, 1000) +
          struct.pack("<I", 12345) + steps)
    write("fuzz_rate_limiter", "huge", bucket(2**63, 2**64 - 1, 2**58) + bucket(0, 0, 0) +
          struct.pack("<I", 1) + op(2**63, 2**62) + op(1, 1, flags=0x80) + op(0, 2**64 - 1, flags=0x40))


def virtq():
    def head(num_log2, feat, desc, avail, used, script):
        return struct.pack("<BBHHHH", num_log2, feat, desc, avail, used, len(script)) + script

    m = Mem()
    m.chain(0, 0, [(DATA, 16, 0), (DATA + 0x100, 512, F_WRITE), (DATA + 0x300, 1, F_WRITE)])
    m.desc(0, 3, DATA + 0x400, 32, F_INDIRECT)
    m.put(DATA + 0x400, struct.pack("<QIHHQIHH", DATA, 8, F_NEXT, 1, DATA + 8, 8, F_WRITE, 0))
    m.put(0x100, struct.pack("<HHHH", 0, 2, 0, 3))
    script = bytes([0, 0, 6, 2]) + struct.pack("<HI", 0, 529) + bytes([0, 3, 0, 5, 1]) + \
        struct.pack("<HI", 3, 8) + bytes([6 | 0x80])
    write("fuzz_virtq", "chains", head(4, 3, 0, 0x100, 0x200, script) + bytes(m.b))


def api_server():
    def put(path, body, extra=b""):
        b = json.dumps(body).encode()
        return b"PUT " + path + b" HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" + \
            extra + b"Content-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b
    streams = [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET /version HTTP/1.1\r\n\r\n"
        b"GET /vm/config HTTP/1.1\r\nConnection: close\r\n\r\n",
        put(b"/machine-config", {"vcpu_count": 2, "mem_size_mib": 128}) +
        put(b"/boot-source", {"kernel_image_path": "/k"}, b"Expect: 100-continue\r\n") +
        b"PATCH /machine-config HTTP/1.1\r\nContent-Length: 17\r\n\r\n{\"vcpu_count\": 1}",
        # Beyond the 1 KiB limit: with and without Expect, then a request that must still work.
        b"PUT /boot-source HTTP/1.1\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000 +
        b"GET / HTTP/1.1\r\n\r\n",
        b"PUT /boot-source HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ]
    for i, st in enumerate(streams):
        write("fuzz_api_server", "stream-%d" % i, bytes([(i * 29) % 256]) + st)


def agent():
    """ember-run's agent protocol (run/agent_proto.h): a whole conversation each way."""
    def frame(t, payload=b""):
        return struct.pack("<II", t, len(payload)) + payload
    strs = [b"/tmp", b"sh", b"-c", b"cat /data/f; echo $A", b"A=1", b"PATH=/bin"]
    req = struct.pack("<IIIIqII", 1, 3, 2, 0, 1800000000, 5, 0) + bytes(range(64)) + \
        b"".join(x + b"\0" for x in strs)
    path = b"/data/f"
    guest = frame(1, req) + frame(2, struct.pack("<QII", 6, 0o644, len(path)) + path) + \
        frame(3, b"hel") + frame(3, b"lo\n") + frame(4) + frame(5, b"stdin data\n") + frame(6)
    write("fuzz_agent_guest", "request-file-stdin", b"\x05" + guest)
    write("fuzz_agent_guest", "request-bytewise", b"\x00" + frame(1, req) + frame(4) + frame(6))
    host = frame(0x80) + frame(0x81) + frame(0x82, b"out\n") + frame(0x83, b"err\n") + \
        frame(0x84, struct.pack("<II", 0, 3))
    write("fuzz_agent_host", "run-exit-3", b"\x03" + host)
    write("fuzz_agent_host", "killed", b"\x00" + frame(0x80) + frame(0x81) + frame(0x84, struct.pack("<II", 1, 9)))
    write("fuzz_agent_host", "error", b"\x09" + frame(0x80) + frame(0x85, b"copy-in /x: No space left"))


def restore_blk():
    """fuzz_restore's virtio-blk: a running drive's transport and own blocks as ember saves
    them (virtio/mmio_snap.c, blk_save), the serial and i8042 blocks of a real state file, and
    a read request waiting on the avail ring, which the restored device's kick finds."""
    blocks = lambda *bs: b"".join(struct.pack("<H", len(b)) + b for b in bs)
    serial, i8042 = bytes.fromhex("000008000000000100"), bytes.fromhex("14050000")
    features = sum(1 << b for b in (2, 6, 9, 28, 29, 32))  # SEG_MAX BLK_SIZE FLUSH INDIRECT EVENT_IDX V1
    transport = struct.pack("<QQ7I", features, features, 0, 0, 0, 0xF, 0, 0, 1)
    transport += struct.pack("<HBQQQHHHB", NUM, 1, ring(0), ring(0) + 0x100, ring(0) + 0x200, 0, 0, 0, 0)
    # 64 sectors; buckets as fuzz_restore configures them (size, refill in ns, burst left,
    # budget, remainder, elapsed): bandwidth half spent, ops with its burst unused.
    bucket = lambda size, burst, budget: struct.pack("<6Q", size, 10**9, burst, budget, 0, 1000)
    own = struct.pack("<Q", 64) + bucket(4096, 0, 2048) + bucket(8, 100, 8)
    m = Mem()
    m.put(DATA, struct.pack("<IIQ", 0, 0, 3))
    m.chain(0, 0, [(DATA, 16, 0), (DATA + 0x100, 512, F_WRITE), (DATA + 0x300, 1, F_WRITE)])
    m.put(ring(0) + 0x100, struct.pack("<HHH", 0, 1, 0))
    cfg = blocks(serial, i8042, transport, own) + b"\x03"
    write("fuzz_restore", "blk-running", struct.pack("<H", len(cfg)) + cfg + bytes(m.b))


def template():
    """ember-run's template.json, as --make-template writes it, with a TAP and without."""
    t = {"format": 1, "snapshot": "vm.state", "memory": "vm.mem", "rootfs": "rootfs.ext4",
         "agent_port": 52, "mem_mib": 128, "vcpus": 1}
    write("fuzz_template", "made", json.dumps(t).encode())
    write("fuzz_template", "with-tap", json.dumps(dict(t, tap="tap0", vcpus=2)).encode())


TARGETS = {"api_server": api_server, "blk": blk, "virtio_mmio": virtio_mmio, "net": net, "vsock": vsock, "http": http,
           "router": router, "config": config, "loader": loader, "rate_limiter": rate_limiter,
           "virtq": virtq, "rng": rng, "balloon": balloon, "agent": agent,
           "restore_blk": restore_blk, "template": template}

if __name__ == "__main__":
    for name in sys.argv[1:] or TARGETS:
        TARGETS[name]()
