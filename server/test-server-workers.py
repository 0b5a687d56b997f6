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

"""Worker threads follow the client's queue depth: a client that waits
for each reply is served by the connection's one thread (no worker
started, every answer right); a client with many requests in flight gets
more workers, never more than -t; they are all joined when it leaves; and
a request sent while the previous one is still being served (the client
turned from one request at a time to pipelining) is answered too."""
import os
import time

import nbd
from nbdcbttest import Server

THREADS = 4
SIZE = 64 * 1024 * 1024


def tasks(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def wait_tasks(pid, want, timeout=10):
    end = time.monotonic() + timeout
    while tasks(pid) != want and time.monotonic() < end:
        time.sleep(0.05)
    return tasks(pid)


with Server.nbdcbt(["-t", str(THREADS), "memory", "size=%d" % SIZE]) as srv:
    with open(srv.sock[:-len("sock")] + "pid") as f:
        pid = int(f.read())
    base = tasks(pid)

    h = srv.connect()
    # One request at a time: only the connection's thread.
    for i in range(200):
        off = (i * 65537 * 512) % (SIZE - 4096)
        h.pwrite(bytes([i & 0xff]) * 4096, off)
        assert h.pread(4096, off) == bytes([i & 0xff]) * 4096, i
    n = tasks(pid)
    assert n == base + 1, \
        "synchronous client: %d threads, want %d" % (n, base + 1)

    # Many requests in flight: more workers, at most -t per connection.
    bufs = []
    for i in range(64):
        off = i * 1024 * 1024
        h.aio_pwrite(bytes([i]) * (1024 * 1024), off)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    # Large payloads bypass the input buffer, yet a writer with 64 in
    # flight is seen as pipelining (63 chances to find the next header).
    n = tasks(pid) - base
    assert n >= 2, "pipelining writer: %d workers, want 2.." % n
    for i in range(64):
        off = i * 1024 * 1024
        buf = nbd.Buffer(1024 * 1024)
        bufs.append((i, buf, h.aio_pread(buf, off)))
    most = 0
    while h.aio_in_flight() > 0:
        most = max(most, tasks(pid) - base)
        h.poll(-1)
    n = tasks(pid) - base
    most = max(most, n)
    assert 2 <= n <= THREADS, \
        "pipelining client: %d workers, want 2..%d" % (n, THREADS)
    assert most <= THREADS, "%d workers, -t %d" % (most, THREADS)
    for i, buf, cookie in bufs:
        assert h.aio_command_completed(cookie), i
        assert buf.to_bytearray() == bytes([i]) * (1024 * 1024), i

    # Synchronous again, on the same connection, then a second request
    # sent while the first is in flight.
    assert h.pread(512, 5 * 1024 * 1024) == bytes([5]) * 512
    b1, b2 = nbd.Buffer(1024 * 1024), nbd.Buffer(512)
    c1 = h.aio_pread(b1, 7 * 1024 * 1024)
    c2 = h.aio_pread(b2, 9 * 1024 * 1024)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    assert h.aio_command_completed(c1) and h.aio_command_completed(c2)
    assert b1.to_bytearray() == bytes([7]) * (1024 * 1024)
    assert b2.to_bytearray() == bytes([9]) * 512

    h.shutdown()
    n = wait_tasks(pid, base)
    assert n == base, "after disconnect: %d threads, want %d" % (n, base)

    # Many short connections: nothing accumulates.
    for i in range(20):
        h = srv.connect()
        assert h.pread(512, 5 * 1024 * 1024) == bytes([5]) * 512
        h.shutdown()
    n = wait_tasks(pid, base)
    assert n == base, "after 20 connections: %d threads" % n
print("ok")
