#!/usr/bin/env python3
"""Edits an ember snapshot state file for the tests (format: src/vmm/snapshot_file.h).

  snapfile.py FILE poke OFFSET BYTE        one byte at a file offset, checksum left stale
  snapfile.py FILE section TAG INST OFFSET BYTE
                                           one byte inside a section's payload, then the
                                           checksum recomputed, so only the content is wrong
                                           (a negative OFFSET counts from the section's end)
  snapfile.py FILE own SLOT OFFSET BYTE    one byte of the virtio device in SLOT's own state
                                           (the last blob of its VDEV section), resealed
  snapfile.py FILE reseal                  recomputes the checksum
"""
import struct
import sys

HEADER = 32
CRC_AT = 24


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def reseal(buf):
    buf[CRC_AT:CRC_AT + 4] = b"\0\0\0\0"
    buf[CRC_AT:CRC_AT + 4] = struct.pack("<I", crc32c(bytes(buf)))


def section(buf, tag, inst):
    nr = struct.unpack_from("<I", buf, 28)[0]
    off = HEADER
    for _ in range(nr):
        t, i, n = struct.unpack_from("<4sIQ", buf, off)
        if t == tag.encode() and i == inst:
            return off + 16, n
        off += 16 + n
    sys.exit("no section %s/%d" % (tag, inst))


def main():
    path, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    buf = bytearray(open(path, "rb").read())
    if cmd == "poke":
        buf[int(args[0], 0)] = int(args[1], 0)
    elif cmd == "section":
        start, n = section(buf, args[0], int(args[1]))
        at = int(args[2], 0)
        at = n + at if at < 0 else at
        if not 0 <= at < n:
            sys.exit("offset %d beyond the section's %d bytes" % (at, n))
        buf[start + at] = int(args[3], 0)
        reseal(buf)
    elif cmd == "own":
        start, n = section(buf, "VDEV", int(args[0]))
        off = start
        for _ in range(3):  # key, label, transport
            off += 4 + struct.unpack_from("<I", buf, off)[0]
        size = struct.unpack_from("<I", buf, off)[0]
        at = int(args[1], 0)
        if at >= size:
            sys.exit("offset %d beyond the device's %d bytes of state" % (at, size))
        buf[off + 4 + at] = int(args[2], 0)
        reseal(buf)
    elif cmd == "reseal":
        reseal(buf)
    else:
        sys.exit("unknown command " + cmd)
    open(path, "wb").write(buf)


main()
