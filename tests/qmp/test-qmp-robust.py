#!/usr/bin/python3
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

"""The control socket under bad clients (nbdcbt): several clients at once,
one that never speaks, one that stops half-way through a message, one
that floods an endless message, one that never reads its answers, deep
nesting, too many clients.  Each gets an error or a closed connection;
the others and the NBD side keep working, and no bitmap changes.  Also:
the socket is mode 0600, transactions that fail while NBD writes run lose
no write, events reach every negotiated client, quit stops the server
cleanly."""

import os
import random
import socket
import stat
import threading
import time

from qmptest import NODE, QMP, NbdcbtDaemon

K = 1024
M = 1024 * 1024


def raw_client(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    for _ in range(300):
        try:
            s.connect(path)
            return s
        except BlockingIOError:         # the listen backlog is full
            time.sleep(0.1)
    raise RuntimeError("cannot connect to " + path)


def closed_by_server(s, timeout=30):
    """Read until EOF; True if the server closed the connection."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def nbd_works(d, offset):
    data = os.urandom(4096)
    d.write(offset, data)
    assert d.read(offset, 4096) == data


d = NbdcbtDaemon()
d.start()
try:
    mode = stat.S_IMODE(os.stat(d.qmp_sock).st_mode)
    assert mode == 0o600, "control socket mode %o" % mode

    q = d.qmp
    q.cmd("block-dirty-bitmap-add", node=NODE, name="b0")
    q.cmd("block-dirty-bitmap-add", node=NODE, name="b1", granularity=512)
    nbd_works(d, 0)
    sums = {n: d.sha256(n) for n in ("b0", "b1")}

    # Several clients at once, interleaved.
    others = [d.connect_qmp() for _ in range(3)]
    for i in range(5):
        for c in others:
            assert c.cmd("query-version")["package"].startswith("nbdcbt")

    # Several messages in one write, one message in many writes.
    p = d.connect_qmp()
    p.send_raw(b'{"execute": "query-version", "id": 1}\n'
               b'{"execute": "query-version", "id": 2} '
               b'{"execute": "nope", "id": 3}')
    assert [p.recv().get("id") for _ in range(3)] == [1, 2, 3]
    for c in b'{"execute": "query-commands", "id": "slow"}':
        p.send_raw(bytes([c]))
    assert p.recv()["id"] == "slow"
    p.close()

    # A client that never speaks and one that stops mid-message.
    silent = raw_client(d.qmp_sock)
    halfway = raw_client(d.qmp_sock)
    halfway.sendall(b'{"execute": "qmp_capabilities"}\n{"execute": "blo')
    assert q.cmd("query-named-block-nodes")
    nbd_works(d, 64 * K)

    # An endless message: an error, then the connection is closed.
    flood = raw_client(d.qmp_sock)
    flood.recv(4096)
    chunk = b'{"execute": "query-version", "arguments": {"x": "' \
        + b"y" * 65536
    try:
        for _ in range(40):
            flood.sendall(chunk if _ == 0 else b"y" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_by_server(flood), "an oversized message was accepted"
    nbd_works(d, 128 * K)
    # The same with nothing but the escape \' (json-c gets \u0027 for
    # each, on a path of its own), some reads ending on the backslash.
    flood = raw_client(d.qmp_sock)
    flood.recv(4096)
    try:
        flood.sendall(b"{'execute': 'query-version', 'id': '")
        for i in range(80):
            # Ends on the backslash of an escape, the next begins with its
            # quote.
            flood.sendall(b"\\'" * 16383 + b"\\" if i % 2 == 0
                          else b"'" + b"\\'" * 16383)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_by_server(flood), "an oversized message was accepted"
    nbd_works(d, 128 * K)

    # Deep nesting and garbage: errors, the session goes on.
    g = d.connect_qmp()
    r = g.execute(b"[" * 100000 + b"]" * 100000)
    assert "error" in r and r["error"]["class"] == "GenericError", r
    r = g.execute(b"\x00\xff\xfe{}}}]]")
    assert "error" in r, r
    # Resynchronising may take more than one error (as in QEMU).
    r = g.execute(b'{"execute": "query-version", "id": "after"}')
    while "error" in r:
        r = g.recv()
    assert r["id"] == "after", r
    r = g.execute(b'{"execute": "block-dirty-bitmap-clear", '
                  b'"arguments": {"node": "%s", "name": "b0", "extra": 1}}'
                  % NODE.encode())
    assert r["error"]["desc"] == "Parameter 'extra' is unexpected", r

    # A client that sends many commands and never reads the answers.
    deaf = raw_client(d.qmp_sock)
    deaf.setblocking(False)
    msg = b'{"execute": "qmp_capabilities"}\n' \
        + b'{"execute": "query-commands"}\n' * 2000
    try:
        deaf.sendall(msg)
    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
        pass
    assert q.cmd("query-version")
    nbd_works(d, 192 * K)

    # Too many clients: the ones over the limit are closed at once.
    extra = [raw_client(d.qmp_sock) for _ in range(20)]

    def refused(s):
        s.settimeout(10)
        try:
            return s.recv(65536) == b""     # accepted ones get a greeting
        except ConnectionResetError:
            return True
    refused = sum(1 for s in extra if refused(s))
    assert refused > 0, "no client was refused"
    for s in extra:
        s.close()
    silent.close()
    halfway.close()
    deaf.close()
    time.sleep(0.5)
    assert q.cmd("query-version")

    # None of the above changed a bitmap beyond the writes.
    nbd_sums = {n: d.sha256(n) for n in ("b0", "b1")}
    q.cmd("block-dirty-bitmap-clear", node=NODE, name="b0")
    q.cmd("block-dirty-bitmap-clear", node=NODE, name="b1")
    assert nbd_sums != sums      # the writes above were recorded

    # Failing transactions while NBD writes run: no write is lost.
    stop = threading.Event()
    written = []

    def writer():
        h = d.nbd()
        while not stop.is_set():
            off = random.randrange(0, d_size - 4096, 512)
            h.pwrite(b"w" * 512, off)
            written.append(off)
        h.shutdown()

    d_size = d.nbd().get_size()
    t = threading.Thread(target=writer)
    t.start()

    def wait_written(n, timeout=60):
        end = time.time() + timeout
        while len(written) < n:
            assert t.is_alive() and time.time() < end, \
                "the writer completed only %d writes" % len(written)
            time.sleep(0.01)

    # Under load the writer's connection can take longer than 40 aborted
    # transactions: the transactions start once writes flow, and go on
    # until writes completed while they ran.
    wait_written(1)
    before, aborted = len(written), 0
    while aborted < 40 or len(written) < before + 20:
        r = q.try_cmd("transaction", actions=[
            {"type": "block-dirty-bitmap-clear",
             "data": {"node": NODE, "name": "b0"}},
            {"type": "block-dirty-bitmap-merge",
             "data": {"node": NODE, "target": "b1", "bitmaps": ["b0"]}},
            {"type": "abort", "data": {}}])
        assert r[0] == "error", r
        aborted += 1
        assert t.is_alive(), "the writer stopped writing"
    stop.set()
    t.join()
    for name in ("b0", "b1"):
        dirty = d.dirty_map(name)
        for off in written:
            assert any(o <= off and off + 512 <= o + ln
                       for o, ln, fl in dirty if fl & 1), \
                "write at %d lost from %s" % (off, name)
    print("%d writes during %d aborted transactions, all recorded"
          % (len(written), aborted))

    # Events reach every negotiated client; quit stops cleanly.
    listener = d.connect_qmp()
    unnegotiated = QMP(d.qmp_sock, negotiate=False)
    r = q.execute(b'{"execute": "quit", "id": "bye"}')
    assert r == {"return": {}, "id": "bye"}, r
    ev = listener.recv()
    assert ev["event"] == "SHUTDOWN", ev
    assert ev["data"] == {"guest": False, "reason": "host-qmp-quit"}, ev
    assert set(ev["timestamp"]) == {"seconds", "microseconds"}
    assert abs(ev["timestamp"]["seconds"] - time.time()) < 60
    assert unnegotiated.recv() is None     # closed, no event
    assert d.proc.wait(60) == 0
finally:
    d.stop()
print("ok")
