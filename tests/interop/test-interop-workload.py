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

"""The same random workload (writes, zeroes and trims of random, unaligned
sizes) sent to each server gives the same dirty map, for granularities
512, 4K, 64K and 1M on an export whose size is no multiple of the
granularity.  Then block status at random offsets and lengths, with and
without REQ_ONE, must give exactly the extents qemu-nbd gives: that is
where the boundary rules show."""

import random
import sys

from interop import (CONTEXT, GRANULARITIES, SEED, SERVERS, SIZE, connect,
                     expected_answer, model, nbd, nbdcbttest, replay,
                     requirements, start, workload)

requirements()

failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


for gi, granularity in enumerate(GRANULARITIES):
    ops = workload(SEED * 100 + 1000 + gi, granularity)
    expected = model(ops, granularity)
    rnd = random.Random(SEED * 100 + 2000 + gi)
    queries = []
    for _ in range(60):
        offset = rnd.randint(0, SIZE - 1)
        count = rnd.randint(1, min(SIZE - offset, rnd.choice(
            [700, 9000, 200000, 4 << 20])))
        queries.append((count, offset, rnd.random() < 0.4))
    # Queries that end exactly at the export end and at granule edges.
    queries.append((SIZE, 0, False))
    queries.append((SIZE, 0, True))
    queries.append((SIZE % granularity or granularity,
                    SIZE - (SIZE % granularity or granularity), False))
    queries.append((1, SIZE - 1, True))

    maps = {}
    answers = {}
    for name in SERVERS:
        with start(name, granularity) as srv:
            h = connect(srv)
            assert h.can_meta_context(CONTEXT), name + ": no " + CONTEXT
            if h.get_size() != SIZE:
                fail("%s: size %d, expected %d" % (name, h.get_size(), SIZE))
                continue
            # A fresh bitmap is all clean.
            fresh = nbdcbttest.extents(h, CONTEXT)
            if fresh != [(0, SIZE, 0)]:
                fail("%s g=%d: fresh bitmap not clean: %r"
                     % (name, granularity, fresh[:5]))
            replay(h, ops)
            maps[name] = nbdcbttest.extents(h, CONTEXT)
            if maps[name] != expected:
                fail("%s g=%d: map differs from the model:\n  got %r\n"
                     "  exp %r" % (name, granularity, maps[name][:20],
                                   expected[:20]))
            answers[name] = []
            for count, offset, req_one in queries:
                got = []

                def cb(meta, off, ents, err):
                    if meta == CONTEXT:
                        got.extend((ents[i], ents[i + 1])
                                   for i in range(0, len(ents), 2))
                    return 0
                flags = nbd.CMD_FLAG_REQ_ONE if req_one else 0
                h.block_status(count, offset, cb, flags)
                answers[name].append(got)
                exp = expected_answer(expected, count, offset, req_one)
                if got != exp:
                    fail("%s g=%d: block status %d@%d%s:\n  got %r\n"
                         "  exp %r" % (name, granularity, count, offset,
                                       " REQ_ONE" if req_one else "",
                                       got[:10], exp[:10]))
            h.shutdown()
    if len(maps) == 2 and maps["qemu-nbd"] != maps["nbdcbt"]:
        fail("g=%d: the servers' maps differ" % granularity)
    if len(answers) == 2:
        for q, a, b in zip(queries, answers["qemu-nbd"], answers["nbdcbt"]):
            if a != b:
                fail("g=%d: block status %r: qemu-nbd %r, nbdcbt %r"
                     % (granularity, q, a[:10], b[:10]))
    print("granularity %d: %d ops, %d extents, %d queries, servers %s"
          % (granularity, len(ops), len(expected), len(queries),
             ",".join(SERVERS)))

sys.exit(1 if failures else 0)
