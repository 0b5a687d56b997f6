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

# pread/pwrite round trips of odd sizes at odd offsets, FUA writes, flush,
# cache; read past the end -> EINVAL, write past the end -> ENOSPC (with
# libnbd's strict checks off so that the requests reach the server).
import random
import nbd
from nbdproto import *

SIZE = 4 * 1024 * 1024
rng = random.Random(1234)
with memory("4M") as srv:
    h = srv.connect()
    model = bytearray(SIZE)
    cases = [(0, 1), (1, 1), (511, 2), (4095, 4097), (SIZE - 1, 1),
             (SIZE - 12345, 12345), (777, 65537), (1 << 20, 3 << 20)]
    cases += [(o, rng.randint(1, 70000)) for o in
              (rng.randrange(SIZE - 70000) for _ in range(20))]
    for i, (off, ln) in enumerate(cases):
        data = bytes(rng.getrandbits(8) for _ in range(min(ln, 4096)))
        data = (data * (ln // len(data) + 1))[:ln]
        flags = nbd.CMD_FLAG_FUA if i % 3 == 0 and h.can_fua() else 0
        h.pwrite(data, off, flags)
        model[off:off + ln] = data
        check_eq(h.pread(ln, off), data,
                 "read back %d bytes at %d (flags %d)" % (ln, off, flags))
    if h.can_flush():
        h.flush()
    # A second connection sees everything the first one wrote.
    h2 = srv.connect()
    for off in range(0, SIZE, 1 << 20):
        check(h2.pread(1 << 20, off) == bytes(model[off:off + (1 << 20)]),
              "second connection sees the data at %d" % off)
    if h.can_cache():
        h.cache(65536, 0)
        h.cache(SIZE, 0)
    # FUA on a read is allowed once SEND_FUA is advertised.
    if h.can_fua():
        h.set_strict_mode(0)
        check_eq(h.pread(10, 0, nbd.CMD_FLAG_FUA), bytes(model[:10]),
                 "READ with FUA")
        h.set_strict_mode(nbd.STRICT_MASK)

    # Past the end, with libnbd's own bounds check off.
    h.set_strict_mode(0)
    expect_errno(lambda: h.pread(512, SIZE), 22, "read at the end")
    expect_errno(lambda: h.pread(1024, SIZE - 512), 22, "read across the end")
    want_w = {28} if SERVER != "qemu-nbd" else {28, 22}
    expect_errno(lambda: h.pwrite(b"z" * 512, SIZE), want_w,
                 "write at the end")
    expect_errno(lambda: h.pwrite(b"z" * 1024, SIZE - 512), want_w,
                 "write across the end")
    check_eq(h.pread(512, SIZE - 512), bytes(model[SIZE - 512:]),
             "failed write across the end changed nothing")
    if h.can_trim():
        expect_errno(lambda: h.trim(1024, SIZE - 512), 22,
                     "trim across the end")
    if h.can_zero():
        expect_errno(lambda: h.zero(1024, SIZE - 512), want_w,
                     "zero across the end")
    if h.can_cache():
        expect_errno(lambda: h.cache(1024, SIZE - 512), 22,
                     "cache across the end")
    check_eq(h.pread(512, SIZE - 512), bytes(model[SIZE - 512:]),
             "tail unchanged after the failures")
    h.shutdown()
    h2.shutdown()
finish()
