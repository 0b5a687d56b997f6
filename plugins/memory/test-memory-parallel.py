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
