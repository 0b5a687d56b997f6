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

# TRIM (reads back as zeroes on the memory plugin), WRITE_ZEROES with and
# without NO_HOLE, FAST_ZERO (success or ENOTSUP, never data loss),
# FUA variants.
import nbd
from nbdproto import *

SIZE = 1024 * 1024
pat = bytes(range(256)) * 256          # 64 KiB
with memory("1M") as srv:
    h = srv.connect()
    check(h.can_trim(), "can_trim", True, False)
    check(h.can_zero(), "can_zero", True, False)

    def fill():
        for off in range(0, SIZE, len(pat)):
            h.pwrite(pat, off)

    fill()
    h.trim(65536, 65536)
    check_eq(h.pread(65536, 65536), bytes(65536),
             "trimmed range reads as zeroes")
    check_eq(h.pread(65536, 0), pat, "data before the trim untouched")
    check_eq(h.pread(65536, 131072), pat, "data after the trim untouched")
    # Unaligned: the bytes around it keep their data (inside, a server
    # may keep some of the old data).
    h.trim(300000, 1000)
    check_eq(h.pread(1000, 0), pat[:1000], "data before an unaligned trim")
    check_eq(h.pread(1000, 301000), pat[301000 % 65536:][:1000],
             "data after an unaligned trim")
    if h.can_fua():
        h.trim(4096, 0, nbd.CMD_FLAG_FUA)

    fill()
    for flags, name in ((0, "plain"), (nbd.CMD_FLAG_NO_HOLE, "NO_HOLE"),
                        (nbd.CMD_FLAG_FUA, "FUA")):
        if flags == nbd.CMD_FLAG_FUA and not h.can_fua():
            continue
        off = {0: 4096, nbd.CMD_FLAG_NO_HOLE: 200000,
               nbd.CMD_FLAG_FUA: 500001}[flags]
        h.zero(70001, off, flags)
        check_eq(h.pread(70001, off), bytes(70001), "zeroed (%s)" % name)
        check_eq(h.pread(1, off - 1), pat[(off - 1) % 65536:][:1],
                 "byte before the zeroed range (%s)" % name)
        e = off + 70001
        check_eq(h.pread(1, e), pat[e % 65536:][:1],
                 "byte after the zeroed range (%s)" % name)

    # FAST_ZERO: either zeroes fast, or fails with ENOTSUP and leaves the
    # data alone; never EINVAL when SEND_FAST_ZERO is advertised.
    if h.can_fast_zero():
        fill()
        for flags in (nbd.CMD_FLAG_FAST_ZERO,
                      nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE):
            try:
                h.zero(65536, 65536, flags)
                check_eq(h.pread(65536, 65536), bytes(65536),
                         "FAST_ZERO (flags %d) zeroed" % flags)
            except nbd.Error as e:
                check_eq(errno_of(e), 95, "FAST_ZERO failure errno")
                check_eq(h.pread(65536, 65536), pat,
                         "failed FAST_ZERO left the data alone")
            fill()
    else:
        h.set_strict_mode(0)
        expect_errno(lambda: h.zero(512, 0, nbd.CMD_FLAG_FAST_ZERO), 22,
                     "FAST_ZERO without SEND_FAST_ZERO")
        h.set_strict_mode(nbd.STRICT_MASK)

    # Zeroing or trimming the whole disk.
    h.zero(SIZE, 0)
    check_eq(h.pread(SIZE, 0), bytes(SIZE), "whole disk zeroed")
    fill()
    h.trim(SIZE, 0)
    check_eq(h.pread(SIZE, 0), bytes(SIZE), "whole disk trimmed")
    h.shutdown()
finish()
