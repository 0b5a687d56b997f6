#!/usr/bin/python3
# memory plugin: many writes in flight on two connections at once, to
# neighbouring ranges that share pages (so pages are allocated
# concurrently), mixed with trims of other pages; then every byte is
# checked.
import os
import nbd
from nbdcbttest import Server, extents

PAGE = 32768
CHUNK = 10000          # not a page multiple: chunks share pages
N = 200                # chunks per connection

with Server.nbdcbt(["memory", "size=64M"], extra=["-t", "8"]) as srv:
    hs = [srv.connect(meta_contexts=["base:allocation"]) for _ in range(2)]
    data = {}
    for i in range(2 * N):
        data[i] = os.urandom(CHUNK)
    # Pages to be trimmed, far from the data, written first.
    hs[0].pwrite(b"\x01" * (8 * PAGE), 32 << 20)

    cookies = []
    for i in range(2 * N):
        h = hs[i % 2]              # interleave: neighbours on both
        buf = nbd.Buffer.from_bytearray(bytearray(data[i]))
        cookies.append((h, h.aio_pwrite(buf, i * CHUNK)))
        if i % 50 == 0:
            off = (32 << 20) + (i // 50) * PAGE
            cookies.append((hs[0], hs[0].aio_trim(PAGE, off)))
    for h, c in cookies:
        while not h.aio_command_completed(c):
            h.poll(-1)

    for i in range(2 * N):
        assert hs[i % 2].pread(CHUNK, i * CHUNK) == data[i], i
    end = 2 * N * CHUNK
    assert extents(hs[0], "base:allocation", 0, end) == [(0, end, 0)]
    # All eight pages written at 32M were trimmed (each by one trim).
    assert hs[1].pread(8 * PAGE, 32 << 20) == bytes(8 * PAGE)
    assert extents(hs[1], "base:allocation", 32 << 20, 8 * PAGE) == \
        [(32 << 20, 8 * PAGE, nbd.STATE_HOLE | nbd.STATE_ZERO)]
    for h in hs:
        h.shutdown()
