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

# memory plugin: data round trip, sparse extents, trim and zero turn
# pages back into holes, flags advertised.
import nbd
from nbdcbttest import Server, extents

HOLE = nbd.STATE_HOLE | nbd.STATE_ZERO
PAGE = 32768
MiB = 1 << 20

with Server.nbdcbt(["memory", "size=16M"]) as srv:
    h = srv.connect(meta_contexts=["base:allocation"])
    assert h.get_size() == 16 * MiB
    assert h.can_trim() and h.can_zero() and h.can_fast_zero()
    assert h.can_multi_conn() and h.can_fua() and h.can_flush()
    assert not h.is_read_only()

    # A fresh disk reads as zeroes and is one hole.
    assert h.pread(MiB, 3 * MiB) == bytes(MiB)
    assert extents(h, "base:allocation") == [(0, 16 * MiB, HOLE)]

    # Round trip, unaligned to pages, with and without FUA.
    data = bytes((i * 7 + 3) & 0xff for i in range(100000))
    h.pwrite(data, 5 * MiB + 123)
    h.pwrite(b"tail", 16 * MiB - 4, nbd.CMD_FLAG_FUA)
    assert h.pread(len(data), 5 * MiB + 123) == data
    assert h.pread(4, 16 * MiB - 4) == b"tail"
    h.flush()

    first = (5 * MiB + 123) // PAGE * PAGE
    last = (5 * MiB + 123 + len(data) + PAGE - 1) // PAGE * PAGE
    assert extents(h, "base:allocation") == [
        (0, first, HOLE),
        (first, last - first, 0),
        (last, 16 * MiB - PAGE - last, HOLE),
        (16 * MiB - PAGE, PAGE, 0),
    ], extents(h, "base:allocation")

    # Writing zeroes over a hole does not allocate.
    h.pwrite(bytes(PAGE * 2), 8 * MiB)
    assert extents(h, "base:allocation", 8 * MiB, 2 * PAGE) == \
        [(8 * MiB, 2 * PAGE, HOLE)]

    # A second connection sees the same data.
    h2 = srv.connect()
    assert h2.pread(len(data), 5 * MiB + 123) == data
    h2.shutdown()

    # Trim everything written in the middle: holes again.
    h.trim(last - first, first)
    assert h.pread(len(data), 5 * MiB + 123) == bytes(len(data))
    assert extents(h, "base:allocation", 0, 16 * MiB - PAGE) == \
        [(0, 16 * MiB - PAGE, HOLE)]

    # Zero part of a page: the rest survives, the page stays data.
    h.pwrite(b"\xff" * PAGE, 2 * MiB)
    h.zero(100, 2 * MiB + 10)
    got = h.pread(PAGE, 2 * MiB)
    assert got == b"\xff" * 10 + bytes(100) + b"\xff" * (PAGE - 110)
    assert extents(h, "base:allocation", 2 * MiB, PAGE) == \
        [(2 * MiB, PAGE, 0)]
    # Zeroing the rest of the page frees it.
    h.zero(10, 2 * MiB)
    h.zero(PAGE - 110, 2 * MiB + 110, nbd.CMD_FLAG_FAST_ZERO)
    assert extents(h, "base:allocation", 2 * MiB, PAGE) == \
        [(2 * MiB, PAGE, HOLE)]

    # Cache is accepted.
    if h.can_cache():
        h.cache(MiB, 0)
    h.shutdown()

# A huge sparse disk costs nothing until written.
with Server.nbdcbt(["memory", "1E"]) as srv:
    h = srv.connect(meta_contexts=["base:allocation"])
    assert h.get_size() == 1 << 60
    h.pwrite(b"end", (1 << 60) - 3)
    assert h.pread(3, (1 << 60) - 3) == b"end"
    assert h.pread(4096, 1 << 59) == bytes(4096)
    h.shutdown()
