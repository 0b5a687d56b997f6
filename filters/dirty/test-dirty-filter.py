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

"""The dirty filter on nbdcbt (what qemu-nbd cannot be compared on):

- several bitmaps of different granularities record the same writes;
- with NBD_CMD_FLAG_REQ_ONE each answers the one extent at the offset;
- writes from several connections at once are all recorded;
- many extents come back in one reply, not one per round trip;
- a disk larger than 4 GiB and requests near 4 GiB;
- base:allocation still comes from the plugin through the filter;
- no bitmap= means no bitmap contexts; -r exports clean bitmaps.
"""

import os
import random
import sys

sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests",
                                "interop"))
import nbd                                          # noqa: E402
from nbdcbttest import Server, extents              # noqa: E402
from interop import model, workload, replay         # noqa: E402

SIZE = 3 * (1 << 20) + 5 * 4096 + 1536
GRANS = {"g512": 512, "g4k": 4096, "g64k": 65536, "g1m": 1 << 20}


def ctx(name):
    return "qemu:dirty-bitmap:" + name


def check_all(h, ops, size=SIZE):
    for name, g in GRANS.items():
        got = extents(h, ctx(name))
        exp = model(ops, g, size)
        assert got == exp, "%s: got %r, expected %r" % (name, got[:8],
                                                        exp[:8])


def check_req_one(h, ops, size=SIZE):
    """With NBD_CMD_FLAG_REQ_ONE each bitmap answers one extent: from the
    request's offset to the end of the model's extent that holds it."""
    rnd = random.Random(3)
    for name, g in GRANS.items():
        exp = model(ops, g, size)
        for _ in range(40):
            off = rnd.randrange(0, size)
            got = []

            def cb(meta, o, e, err):
                if meta == ctx(name):
                    got.extend(e)
                return 0
            h.block_status(size - off, off, cb, nbd.CMD_FLAG_REQ_ONE)
            x = next(x for x in exp if x[0] <= off < x[0] + x[1])
            want = [x[0] + x[1] - off, x[2]]
            assert got == want, "%s REQ_ONE at %d: got %r, expected %r" % (
                name, off, got, want)


# Four bitmaps, one workload.
args = ["--filter=dirty", "memory", "size=%d" % SIZE]
args += ["bitmap=%s:%d" % (n, g) for n, g in GRANS.items()]
with Server.nbdcbt(args) as srv:
    h = srv.connect([ctx(n) for n in GRANS])
    ops = workload(5, 4096)
    replay(h, ops)
    check_all(h, ops)
    check_req_one(h, ops)
    h.shutdown()

# Four connections writing at once (aio, many in flight).
with Server.nbdcbt(args) as srv:
    hs = [srv.connect([ctx(n) for n in GRANS]) for _ in range(4)]
    rnd = random.Random(9)
    ops = []
    for i in range(400):
        h = hs[i % 4]
        length = rnd.randint(1, 5000)
        offset = rnd.randint(0, SIZE - length)
        ops.append(("write", offset, length))
        h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(length)), offset)
    for h in hs:
        while h.aio_in_flight() > 0:
            h.poll(-1)
    check_all(hs[0], ops)
    for h in hs:
        h.shutdown()

# Many extents in one reply; a large disk; requests near 4 GiB.
big = 6 << 30
with Server.nbdcbt(["--filter=dirty", "memory", "size=%d" % big,
                    "bitmap=b0:512"]) as srv:
    h = srv.connect(["base:allocation", ctx("b0")])
    for i in range(0, 2 << 20, 1024):        # every other 512-byte granule
        h.pwrite(b"z", i)
    h.pwrite(b"z", big - 1)
    got = []
    h.block_status(2 << 20, 0,
                   lambda m, o, e, err: got.append((m, len(e) // 2)) or 0)
    n = dict(got)[ctx("b0")]
    assert n == 4096, "one request gave %d extents, expected 4096" % n
    # Near 4 GiB, from an unaligned offset: the last extent is clipped
    # to the request, the boundaries stay on granules.
    ents = []

    def cb(meta, off, e, err):
        if meta == ctx("b0"):
            ents.extend(e)
        return 0
    h.block_status(0xffffffff, 1 << 20, cb)
    assert ents[:4] == [512, 1, 512, 0], ents[:4]
    assert sum(ents[0::2]) == 0xffffffff, sum(ents[0::2])
    tail = extents(h, ctx("b0"), big - (1 << 20))
    assert tail == [(big - (1 << 20), (1 << 20) - 512, 0),
                    (big - 512, 512, 1)], tail
    # base:allocation is the plugin's: the written pages are data.
    alloc = extents(h, "base:allocation", 0, 1 << 20)
    assert alloc[0][2] == 0, alloc[:3]
    h.shutdown()

# No bitmap=: no bitmap contexts, writes work.
with Server.nbdcbt(["--filter=dirty", "memory", "size=1M"]) as srv:
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_unix(srv.sock)
    h.add_meta_context("qemu:")
    names = []
    h.opt_list_meta_context(lambda name: names.append(name) or 0)
    assert names == [], names
    h.opt_abort()
    h = srv.connect()
    h.pwrite(b"x" * 4096, 0)
    h.shutdown()

# Read-only: the bitmaps are exported, clean.
with Server.nbdcbt(args, extra=["-r"]) as srv:
    h = srv.connect([ctx("g4k")])
    assert h.is_read_only()
    assert extents(h, ctx("g4k")) == [(0, SIZE, 0)]
    h.shutdown()

print("ok")
