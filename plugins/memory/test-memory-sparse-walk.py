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

# memory plugin: walking a large sparse disk visits what was written, not
# the whole tree.  After scattered writes into 1 TiB, most of each radix
# node was never written; block status, trim and the free at exit used to
# read every slot of every node, faulting in all of their pages (counted
# here as the server's minor page faults, which a walk of written slots
# does not cause).  The extents and the trims are checked against a model.
import random

import nbd
from nbdcbttest import Server, extents

HOLE = nbd.STATE_HOLE | nbd.STATE_ZERO
PAGE = 32768
TiB = 1 << 40
NWRITES = 3000


def minflt(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def model_extents(pages, size):
    out, pos = [], 0
    for p in sorted(pages):
        off = p * PAGE
        if out and out[-1][2] == 0 and out[-1][0] + out[-1][1] == off:
            out[-1] = (out[-1][0], out[-1][1] + PAGE, 0)
        else:
            if off > pos:
                out.append((pos, off - pos, HOLE))
            out.append((off, PAGE, 0))
        pos = off + PAGE
    if pos < size:
        out.append((pos, size - pos, HOLE))
    return out


with Server.nbdcbt(["memory", "size=1T"]) as srv:
    pid = srv.proc.pid
    h = srv.connect(meta_contexts=["base:allocation"])
    rnd = random.Random(7)
    pages = set()
    buf = b"\x5a" * 4096
    for _ in range(NWRITES):
        off = rnd.randrange(0, TiB // 4096) * 4096
        pages.add(off // PAGE)
        h.aio_pwrite(buf, off)
        while h.aio_in_flight() > 32:
            h.poll(-1)
    while h.aio_in_flight() > 0:
        h.poll(-1)

    before = minflt(pid)
    got = extents(h, "base:allocation")
    faults = minflt(pid) - before
    print("whole-disk block status: %d extents, %d page faults in the server"
          % (len(got), faults))
    assert got == model_extents(pages, TiB)
    # Before the used-slot bitmaps this was about 7 faults per node
    # written, some 18,000 here.
    assert faults < 1000, faults

    # Trim every other written page and a long range with none in it:
    # holes where the model says.
    trimmed = sorted(pages)[::2]
    before = minflt(pid)
    for p in trimmed:
        h.trim(PAGE, p * PAGE)
    h.trim(1 << 30, TiB - (1 << 30))
    pages -= set(trimmed)
    pages = {p for p in pages if p * PAGE < TiB - (1 << 30)}
    got = extents(h, "base:allocation")
    faults = minflt(pid) - before
    print("after trims: %d extents, %d page faults" % (len(got), faults))
    assert got == model_extents(pages, TiB)
    assert faults < 1000, faults
    h.shutdown()
