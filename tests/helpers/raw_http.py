#!/usr/bin/env python3
"""Sends stdin as-is to the Unix socket argv[1] and prints the reply's first line.

A server may answer and close before it has read everything (oversized headers):
the write then fails with EPIPE, but the reply is already queued on our side of
the socket, so we keep reading instead of giving up as socat does."""
import socket
import sys

sock = socket.socket(socket.AF_UNIX)
sock.settimeout(5)
sock.connect(sys.argv[1])
try:
    sock.sendall(sys.stdin.buffer.read())
    sock.shutdown(socket.SHUT_WR)
except (BrokenPipeError, ConnectionResetError):
    pass
reply = b""
try:
    while b"\n" not in reply:
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
except (ConnectionResetError, socket.timeout):
    pass
print(reply.split(b"\r\n")[0].decode(errors="replace"))
