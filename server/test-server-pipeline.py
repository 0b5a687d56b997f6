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

"""Many requests in flight with mixed sizes (headers and payloads split
across the server's input buffer in every way): reads see exactly what
was written, on every worker thread count."""
import os
import random

import nbd

NBDCBT = os.environ["NBDCBT"]
SLOT = 1024 * 1024 + 8192
SLOTS = 24
SIZES = [1, 28, 512, 4096, 4124, 8191, 8192, 9000, 16384, 65536, 1024 * 1024]


def run(threads, seed):
    rnd = random.Random(seed)
    h = nbd.NBD()
    h.connect_systemd_socket_activation(
        [NBDCBT, "-t", str(threads), "memory", "size=%d" % (SLOT * SLOTS)])
    model = bytearray(SLOT * SLOTS)
    busy = set()
    pending = []

    def reap():
        while h.aio_in_flight() > 0 and len(pending) >= 16:
            h.poll(-1)
            done = [p for p in pending if h.aio_command_completed(p[0])]
            for p in done:
                pending.remove(p)
                busy.discard(p[1])
                if p[2] is not None:
                    off, want, buf = p[2]
                    assert buf.to_bytearray() == want, (threads, seed, off)

    for i in range(600):
        reap()
        free = [s for s in range(SLOTS) if s not in busy]
        slot = rnd.choice(free)
        size = rnd.choice(SIZES)
        off = slot * SLOT + rnd.randrange(0, SLOT - size + 1)
        if rnd.random() < 0.5:
            data = bytes([rnd.randrange(256)]) * size
            model[off:off + size] = data
            cookie = h.aio_pwrite(data, off)
            pending.append((cookie, slot, None))
        else:
            buf = nbd.Buffer(size)
            cookie = h.aio_pread(buf, off)
            pending.append((cookie, slot, (off, bytes(model[off:off + size]),
                                           buf)))
        busy.add(slot)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for cookie, slot, check in pending:
        assert h.aio_command_completed(cookie)
        if check is not None:
            off, want, buf = check
            assert buf.to_bytearray() == want, (threads, seed, off)
    assert h.pread(SLOT * SLOTS, 0) == model
    h.shutdown()


for threads, seed in ((16, 1), (1, 2), (3, 3)):
    run(threads, seed)
