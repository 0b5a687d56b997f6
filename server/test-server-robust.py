#!/usr/bin/env python3
# nbdcbt
# Copyright (C) 2026 the nbdcbt authors
# All rights reserved.
#
# Redistribution and use in source and binary forms, with or without
# modification, are permitted provided that the following conditions are
# met:
#
# * Redistributions of source code must retain the above copyright
# notice, this list of conditions and the following disclaimer.
#
# * Redistributions in binary form must reproduce the above copyright
# notice, this list of conditions and the following disclaimer in the
# documentation and/or other materials provided with the distribution.
#
# * Neither the name of the nbdcbt authors nor the names of its
# contributors may be used to endorse or promote products derived from
# this software without specific prior written permission.
#
# THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
# "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
# LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A
# PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
# HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
# SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
# LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
# DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
# THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
# (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
# OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

"""Misbehaving clients lose only their own connection; --max-connections
closes excess clients and the server keeps serving the others."""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

import nbd

import nbdcbttest
from nbdcbttest import export_name_handshake, recv_exactly

NBDCBT = os.environ["NBDCBT"]
tmp = tempfile.mkdtemp(prefix="nbdcbt-server-")
sock = os.path.join(tmp, "sock")
pidfile = os.path.join(tmp, "pid")

proc = subprocess.Popen([NBDCBT, "-f", "-U", sock, "-P", pidfile,
                         "--max-connections=3", "memory", "size=1M"])


def wait_for(path):
    for _ in range(300):
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            sys.exit("server exited early")
        time.sleep(0.1)
    sys.exit("timeout waiting for " + path)


def raw_connect():
    return nbdcbttest.raw_connect(sock)


def go(s):
    assert export_name_handshake(s) == 1024 * 1024


def is_closed(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return False


def check_serving():
    h = nbd.NBD()
    h.connect_unix(sock)
    h.pwrite(b"ok" * 256, 0)
    assert h.pread(512, 0) == b"ok" * 256
    h.shutdown()


try:
    wait_for(pidfile)

    # A write header claiming 1 GiB: that connection is dropped.
    s = raw_connect()
    go(s)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 1, 0, 1 << 30))
    assert is_closed(s), "1 GiB write did not drop the connection"
    s.close()
    check_serving()

    # Bad request magic: dropped.
    s = raw_connect()
    go(s)
    s.sendall(b"\xde\xad\xbe\xef" + b"\0" * 24)
    assert is_closed(s), "bad magic did not drop the connection"
    s.close()

    # Unknown command: EINVAL, connection stays.
    s = raw_connect()
    go(s)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 99, 7, 0, 0))
    magic, err, cookie = struct.unpack(">IIQ", recv_exactly(s, 16))
    assert (magic, err, cookie) == (0x67446698, 22, 7), (magic, err, cookie)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 8, 0, 16))
    magic, err, cookie = struct.unpack(">IIQ", recv_exactly(s, 16))
    assert err == 0 and cookie == 8
    assert len(recv_exactly(s, 16)) == 16
    s.close()

    # --max-connections=3 with three clients past the handshake: the
    # fourth is closed, the others keep working.  (Clients still in the
    # handshake are evicted instead: test-server-limits.py.)
    time.sleep(1)     # the connections above finish closing
    held = [raw_connect() for _ in range(3)]
    for i, h in enumerate(held):
        go(h)
        # A reply proves the server is past the handshake.
        h.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, i, 0, 512))
        assert struct.unpack(">IIQ", recv_exactly(h, 16))[1] == 0
        assert len(recv_exactly(h, 512)) == 512
    extra = raw_connect()
    assert is_closed(extra), "connection over the limit was not closed"
    extra.close()
    for h in held:
        h.close()
    time.sleep(0.5)
    check_serving()
finally:
    proc.terminate()
    rc = proc.wait(timeout=30)
    if os.path.exists(sock) or os.path.exists(pidfile):
        sys.exit("socket or pid file left behind")
    os.rmdir(tmp) if not os.listdir(tmp) else None
if rc != 0:
    sys.exit("server exit status %d" % rc)
