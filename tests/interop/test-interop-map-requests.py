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

"""Block status as nbdinfo --map asks for it, on a large sparse export:
requests of 4 GiB - 512 bytes (nbdinfo's size), each answered with
thousands of extents, walking an export whose size is no multiple of the
request or the granularity, plus the same walk from offsets inside a
granule.  Every reply must be exactly the extents qemu-nbd sends (clipped
to the request and the export end, clean and dirty alternating), checked
against a model and, in "both" mode, against qemu-nbd's own replies.

A single reply here has more dirty areas than the server's bitmap walk
handles under one lock acquisition (1024), so the walk's batches meet
inside a reply.
"""

import bisect
import random
import sys

from interop import (CONTEXT, SEED, SERVERS, block_status_raw, connect,
                     requirements, start)

requirements()

# 8 GiB + 96.5 KiB: no multiple of 4 GiB - 512, 4K or 64K.
SIZE = (8 << 30) + 96 * 1024 + 512
REQUEST = (1 << 32) - 512
GRANULARITIES = [4096, 65536]
NWRITES = 3000

failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


def workload(seed):
    """Scattered writes: mostly 4 KiB at 512-byte offsets, some runs of
    neighbours (multi-granule areas), some at the very end."""
    rnd = random.Random(seed)
    ops = []
    for i in range(NWRITES):
        if i % 50 == 0:
            length = 512 * rnd.randint(1, 2000)
        else:
            length = 4096
        if i % 400 == 0:
            offset = SIZE - length
        else:
            offset = 512 * rnd.randint(0, (SIZE - length) // 512)
        ops.append((offset, length))
    return ops


def dirty_granules(ops, granularity):
    gs = set()
    for offset, length in ops:
        gs.update(range(offset // granularity,
                        (offset + length - 1) // granularity + 1))
    return sorted(gs)


def expected_answer(dirty, granularity, count, offset):
    """What qemu-nbd answers for [offset, offset + count): maximal runs of
    dirty and clean granules, cut at the request and the export end."""
    out = []
    pos, end = offset, min(offset + count, SIZE)
    while pos < end:
        g = pos // granularity
        i = bisect.bisect_left(dirty, g)
        if i < len(dirty) and dirty[i] == g:
            # Dirty run: consecutive granules from g.
            j = i
            while j + 1 < len(dirty) and dirty[j + 1] == dirty[j] + 1:
                j += 1
            nxt = (dirty[j] + 1) * granularity
            fl = 1
        else:
            nxt = dirty[i] * granularity if i < len(dirty) else SIZE
            fl = 0
        nxt = min(nxt, end)
        out.append((nxt - pos, fl))
        pos = nxt
    return out


def walk(h, start_offset):
    """nbdinfo's loop from START_OFFSET: replies by request offset."""
    replies = {}
    offset = start_offset
    while offset < SIZE:
        count = min(REQUEST, SIZE - offset)
        got, chunks = block_status_raw(h, count, offset)
        if chunks.get(CONTEXT) != 1:
            fail("offset %d: %r chunks" % (offset, chunks))
        replies[offset] = got
        # The next request starts where this answer ends, as nbdinfo does.
        offset += sum(length for length, _ in got) or count
    return replies


for gi, granularity in enumerate(GRANULARITIES):
    ops = workload(SEED * 100 + 7000 + gi)
    dirty = dirty_granules(ops, granularity)
    starts = [0, granularity // 2 + 512, SIZE - REQUEST - 1536]
    results = {}
    for name in SERVERS:
        with start(name, granularity, size=SIZE) as srv:
            h = connect(srv)
            assert h.can_meta_context(CONTEXT), name + ": no " + CONTEXT
            for offset, length in ops:
                h.aio_pwrite(b"\x5a" * length, offset)
                while h.aio_in_flight() > 16:
                    h.poll(-1)
            while h.aio_in_flight() > 0:
                h.poll(-1)
            h.flush()
            for s in starts:
                replies = walk(h, s)
                results[(name, s)] = replies
                most = 0
                for offset, got in replies.items():
                    want = expected_answer(dirty, granularity,
                                           min(REQUEST, SIZE - offset),
                                           offset)
                    most = max(most, len(got))
                    if got != want:
                        n = next((i for i, (a, b) in
                                  enumerate(zip(got, want)) if a != b),
                                 min(len(got), len(want)))
                        fail("%s g=%d from %d: reply at %d differs at "
                             "extent %d: got %r want %r (%d vs %d extents)"
                             % (name, granularity, s, offset, n,
                                got[n:n + 2], want[n:n + 2], len(got),
                                len(want)))
                if s == 0 and most <= 2 * 1024:
                    fail("%s g=%d: only %d extents per reply, the test "
                         "needs more than the walk's batch"
                         % (name, granularity, most))
            h.shutdown()
    if len(SERVERS) == 2:
        for s in starts:
            if results[("nbdcbt", s)] != results[("qemu-nbd", s)]:
                fail("g=%d from %d: nbdcbt and qemu-nbd replies differ"
                     % (granularity, s))
    print("g=%d: %d dirty granules, replies checked from %r"
          % (granularity, len(dirty), starts))

if failures:
    print("%d failure(s)" % failures)
    sys.exit(1)
print("ok")
