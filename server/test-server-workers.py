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
more workers, never more than -t; they are all joined when it leaves; a
request sent while the previous one is still being served (the client
turned from one request at a time to pipelining) is answered too.  A
connection's thread outlives its connection to serve the next one: many
short connections reuse it, at most 8 such threads wait, and the server
still stops at once with them waiting and with idle clients connected."""
import os
import time

import nbd
from nbdcbttest import Server

THREADS = 4
SIZE = 64 * 1024 * 1024


def tasks(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def tids(pid):
    return set(int(t) for t in os.listdir("/proc/%d/task" % pid))


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
    # The workers are joined; the connection's own thread stays, idle.
    n = wait_tasks(pid, base + 1)
    assert n == base + 1, \
        "after disconnect: %d threads, want %d" % (n, base + 1)
    idle = tids(pid)

    # Many short connections, one after another: the idle thread serves
    # each of them, no thread is created.  (The pause lets the thread
    # finish closing the last connection: a client that comes back
    # sooner than that gets a new thread.)
    for i in range(20):
        time.sleep(0.05)
        h = srv.connect()
        assert h.pread(512, 5 * 1024 * 1024) == bytes([5]) * 512
        assert tids(pid) == idle, "connection %d started a thread" % i
        h.shutdown()
    n = wait_tasks(pid, base + 1)
    assert n == base + 1, "after 20 connections: %d threads" % n

    # Twelve at once need twelve threads; when they leave, 8 stay idle
    # and the rest exit.
    hs = [srv.connect() for _ in range(12)]
    for i, h in enumerate(hs):
        assert h.pread(512, 5 * 1024 * 1024) == bytes([5]) * 512, i
    n = tasks(pid)
    assert n == base + 12, "12 connections: %d threads" % (n - base)
    for h in hs:
        h.shutdown()
    n = wait_tasks(pid, base + 8)
    assert n == base + 8, "after 12 connections: %d idle threads" % (n - base)

    # Stopping with 8 idle threads is as quick as without, and so is
    # stopping with clients connected and idle: their threads wait for
    # input on the socket alone, which the server shuts down.
    quiet = [srv.connect() for _ in range(2)]
    for h in quiet:
        assert h.pread(512, 5 * 1024 * 1024) == bytes([5]) * 512
    time.sleep(0.2)
    t0 = time.monotonic()
    rc = srv.stop()
    took = time.monotonic() - t0
    assert rc == 0, "exit status %d" % rc
    assert took < 5, "stop with idle threads took %.1f s" % took
print("ok")
