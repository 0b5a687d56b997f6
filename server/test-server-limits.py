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

"""Connection limits and timeouts (nbdcbt(1) LIMITS): 200 clients at
once; clients that never finish the handshake are evicted at the
connection limit and dropped at --handshake-limit even when they dribble
bytes; a WRITE larger than the maximum payload is refused with EINVAL
and the connection keeps working; a client flooding 32 MiB WRITEs or
READs without reading replies holds at most --max-in-flight of server
memory and does not starve another client; --idle-timeout drops an idle client
and spares a busy one."""
import os
import socket
import struct
import sys
import threading
import time

import nbd
import nbdcbttest
from nbdcbttest import (Server, export_name_handshake, recv_exactly,
                        scratch_dir)

MIB = 1024 * 1024
REQUEST_MAGIC = 0x25609513
OPT_MAGIC = 0x49484156454F5054


raw_connect = nbdcbttest.raw_connect
go = export_name_handshake


def request(s, cmd, cookie, offset, count, payload=b""):
    s.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, cmd, cookie, offset,
                          count) + payload)


def simple_reply(s):
    magic, err, cookie = struct.unpack(">IIQ", recv_exactly(s, 16))
    assert magic == 0x67446698, hex(magic)
    return err, cookie


def closed_within(s, seconds):
    """True if the server closes S within SECONDS (reading what it
    sends meanwhile)."""
    s.settimeout(seconds)
    try:
        while s.recv(4096):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field + " not found")


def check_serving(srv):
    h = srv.connect()
    h.pwrite(b"ok" * 256, 0)
    assert h.pread(512, 0) == b"ok" * 256
    h.shutdown()


# 1. 200 clients at once, each served.
with Server.nbdcbt(["--max-connections=200", "memory", "size=1M"]) as srv:
    handles = []
    for i in range(200):
        h = nbd.NBD()
        h.connect_unix(srv.sock)
        handles.append(h)
    for i, h in enumerate(handles):
        h.pwrite(struct.pack(">I", i) * 128, (i % 2) * 512)
    for i, h in enumerate(handles):
        assert len(h.pread(512, 0)) == 512
        h.shutdown()
    print("ok   200 clients at once")

# 2. Slow-loris handshakes.
with Server.nbdcbt(["--max-connections=4", "--handshake-limit=4",
                    "memory", "size=1M"]) as srv:
    # Four clients that read the greeting and never negotiate fill the
    # limit; a normal client still gets in (the oldest silent one goes).
    silent = []
    for _ in range(4):
        s = raw_connect(srv.sock)
        assert recv_exactly(s, 18)[:8] == b"NBDMAGIC"
        silent.append(s)
        time.sleep(0.1)
    t0 = time.time()
    check_serving(srv)
    assert closed_within(silent[0], 2), "the oldest handshake was not evicted"
    print("ok   a normal client gets in past 4 stalled handshakes")

    # The rest are dropped once --handshake-limit passes, and so is a
    # client that sends a byte every half second (a timeout per read
    # would never fire).
    dribbler = raw_connect(srv.sock)
    assert recv_exactly(dribbler, 18)[:8] == b"NBDMAGIC"
    start = time.time()
    data = struct.pack(">I", 3) + struct.pack(">QII", OPT_MAGIC, 1, 1000)
    closed = False
    for b in data + b"x" * 40:
        try:
            dribbler.send(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if closed_within(dribbler, 0.5):
            closed = True
            break
    took = time.time() - start
    assert closed, "a dribbling handshake was never dropped"
    assert 3 <= took < 12, "dropped after %.1f s (limit 4 s)" % took
    for s in silent[1:]:
        assert closed_within(s, 10), "a stalled handshake was not dropped"
    print("ok   stalled and dribbling handshakes dropped after %.1f s" % took)
    check_serving(srv)

# 3. A WRITE larger than the maximum payload (32 MiB): payload read and
# dropped, EINVAL, the connection keeps working.
with Server.nbdcbt(["memory", "size=64M"]) as srv:
    s = raw_connect(srv.sock)
    go(s)
    big = 40 * MIB
    sender = threading.Thread(
        target=request, args=(s, 1, 1, 0, big, b"\xab" * big))
    sender.start()
    err, cookie = simple_reply(s)
    sender.join()
    assert (err, cookie) == (22, 1), (err, cookie)
    request(s, 0, 2, 0, 4096)
    err, cookie = simple_reply(s)
    assert (err, cookie) == (0, 2), (err, cookie)
    assert recv_exactly(s, 4096) == b"\0" * 4096, "refused write changed data"
    s.close()
    # libnbd sees the error, not a reset connection.
    h = srv.connect()
    h.set_strict_mode(0)
    try:
        h.pwrite(b"\xcd" * big, 0)
        sys.exit("oversize write succeeded")
    except nbd.Error as e:
        assert e.errno == 22 or "Invalid argument" in str(e), e
    assert h.pread(512, 0) == b"\0" * 512
    h.shutdown()
    print("ok   oversize WRITE refused with EINVAL, connection kept")

# 4. Floods of 32 MiB requests from a client that reads no reply:
# server memory stays within --max-in-flight (plus one request), and
# another client is still served.  Freed memory must leave the process
# for RSS to mean anything: no ASan quarantine.
os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "")
                              + ":quarantine_size_mb=0").lstrip(":")
d = scratch_dir()
disk = os.path.join(d, "flood.img")
with open(disk, "wb") as f:
    f.truncate(256 * MIB)


def check_not_starved(srv):
    h = srv.connect()
    for i in range(5):
        t0 = time.time()
        h.pwrite(b"\1" * 4096, 255 * MIB)
        h.pread(4096, 255 * MIB)
        assert time.time() - t0 < 10, "a client starved by another's flood"
        time.sleep(0.2)
    h.shutdown()


with Server.nbdcbt(["--max-in-flight=64M", "-t", "16", "file", disk]) as srv:
    pid = srv.proc.pid
    check_serving(srv)
    base = vm_kib(pid, "VmRSS")

    # WRITEs: the payloads are read only as buffers come back.
    s = raw_connect(srv.sock)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    go(s)
    payload = b"\x5a" * (32 * MIB)
    sent = [0]

    def flood():
        try:
            for i in range(48):
                request(s, 1, i, (i % 8) * 32 * MIB, 32 * MIB, payload)
                sent[0] += 1
        except OSError:
            pass

    t = threading.Thread(target=flood)
    t.start()
    check_not_starved(srv)
    t.join(120)
    assert not t.is_alive(), "the write flood did not finish"
    assert sent[0] == 48, sent[0]
    s.close()

    # READs whose replies are never read: each reply blocks holding its
    # buffer, so without a budget every worker would hold 32 MiB.
    s = raw_connect(srv.sock)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    go(s)
    for i in range(64):
        request(s, 0, i, (i % 8) * 32 * MIB, 32 * MIB)
    time.sleep(3)
    check_not_starved(srv)
    peak = vm_kib(pid, "VmHWM")
    s.close()
    grown = (peak - base) // 1024
    print("     server RSS peak %d MiB over its idle size" % grown)
    # 64 MiB of buffers, slack for the allocator and the threads.
    assert grown < 64 + 48, "server RSS grew by %d MiB" % grown
    print("ok   floods of large WRITEs and unread READs stay within "
          "--max-in-flight")

# 5. --idle-timeout: an idle client is dropped, a busy one is not.
with Server.nbdcbt(["--idle-timeout=2", "memory", "size=1M"]) as srv:
    idle = srv.connect()
    busy = srv.connect()
    idle.pread(512, 0)
    for _ in range(10):
        busy.pread(512, 0)
        time.sleep(0.5)
    try:
        idle.pread(512, 0)
        sys.exit("an idle client was not dropped")
    except nbd.Error:
        pass
    busy.pread(512, 0)
    busy.shutdown()
    print("ok   --idle-timeout drops the idle client only")
