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

# 64 requests in flight on one connection (aio_pwrite, then aio_pread
# mixed with more writes), replies matched by cookie, data verified.
import nbd
from nbdproto import *

N = 64
BS = 65536
with memory("8M") as srv:
    h = srv.connect()

    def drain(cookies):
        while cookies:
            h.poll(-1)
            for c in list(cookies):
                if h.aio_command_completed(c):
                    cookies.remove(c)

    cookies = []
    for i in range(N):
        cookies.append(h.aio_pwrite(bytes([i]) * BS, i * BS))
    check_eq(h.aio_in_flight() > 1, True, "several requests in flight")
    drain(cookies)

    bufs = [nbd.Buffer(BS) for _ in range(N)]
    cookies = [h.aio_pread(bufs[i], i * BS) for i in range(N)]
    # Writes to other areas in flight alongside the reads.
    cookies += [h.aio_pwrite(b"\xee" * 4096, (N * BS) + i * 4096)
                for i in range(N)]
    drain(cookies)
    for i in range(N):
        check(bufs[i].to_bytearray() == bytes([i]) * BS,
              "aio_pread %d returned what aio_pwrite %d wrote" % (i, i))
    check_eq(h.pread(N * 4096, N * BS), b"\xee" * (N * 4096),
             "the writes issued alongside the reads")

    # A burst of small unaligned requests of every kind.
    cookies = []
    for i in range(N):
        cookies.append(h.aio_pwrite(b"%05d" % i, 7 * i + 3))
    if h.can_flush():
        cookies.append(h.aio_flush())
    drain(cookies)
    want = bytearray(h.pread(7 * N + 3, 0))
    for i in range(N):
        check_eq(bytes(want[7 * i + 3:7 * i + 8]), b"%05d" % i,
                 "small write %d" % i)
    h.shutdown()

    # Simple replies: 64 reads of different lengths in flight, each
    # reply's data must follow its own header.
    h = srv.connect(structured=False)
    lens = [1 + (i * 997) % 9000 for i in range(N)]
    bufs = [nbd.Buffer(n) for n in lens]
    cookies = [h.aio_pread(bufs[i], i * BS + 1000) for i in range(N)]
    drain(cookies)
    for i in range(N):
        check(bufs[i].to_bytearray() == bytes([i]) * lens[i],
              "simple-reply aio_pread %d (%d bytes)" % (i, lens[i]))
    h.shutdown()
finish()
