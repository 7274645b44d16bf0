#!/usr/bin/env python3
"""A page fault handler that takes ember's Uffd hand-off and serves nothing.

uffd_silent.py SOCKET TRIGGER: listens on SOCKET, accepts one connection, receives the
hand-off (JSON regions and the userfaultfd), prints what it got, then waits until the file
TRIGGER exists and closes the connection and the userfaultfd without having served a page.
"""
import array
import os
import socket
import sys
import time

sock_path, trigger = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock_path)
srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept()
fds = array.array("i")
data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * fds.itemsize))
for level, kind, payload in anc:
    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
        fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
print("hand-off: %d fds, %s" % (len(fds), data.decode()), flush=True)
while not os.path.exists(trigger):
    time.sleep(0.02)
for fd in fds:
    os.close(fd)
conn.close()
print("closed", flush=True)
