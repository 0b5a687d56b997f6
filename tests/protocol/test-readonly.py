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

# A read-only export (-r): READ_ONLY flag, can_write false, no TRIM or
# WRITE_ZEROES advertised; writes, trims and zeroes sent anyway -> EPERM.
import struct
import nbd
from nbdproto import *

with memory("1M", readonly=True) as srv:
    h = srv.connect()
    check(h.is_read_only(), "is_read_only", True, False)
    check(not h.can_trim(), "no trim on a read-only export", False, True)
    check(not h.can_zero(), "no zero on a read-only export", False, True)
    check_eq(h.pread(4096, 0), bytes(4096), "read works")
    h.set_strict_mode(0)
    # (qemu-nbd 7.2 says EINVAL where the spec says EPERM.)
    EPERMS = {1} if SERVER != "qemu-nbd" else {1, 22}
    expect_errno(lambda: h.pwrite(b"w" * 512, 0), EPERMS, "write")
    expect_errno(lambda: h.pwrite(b"w" * 512, 0, nbd.CMD_FLAG_FUA), {1, 22},
                 "write with FUA")
    expect_errno(lambda: h.trim(512, 0), {1, 22}, "trim")
    expect_errno(lambda: h.zero(512, 0), {1, 22}, "zero")
    check_eq(h.pread(4096, 0), bytes(4096), "nothing was written")
    if h.can_flush():
        h.flush()
    h.shutdown()

    # By hand: the WRITE payload is consumed and EPERM comes back.
    with Raw(srv.sock) as r:
        size, eflags, _, _ = r.handshake()
        check(eflags & EF_READ_ONLY, "READ_ONLY transmission flag", 1, eflags)
        r.request(CMD_WRITE, 0, 5, 0, 512, b"w" * 512)
        c, err = r.reply()[1:3]
        check(c == 5 and err in EPERMS, "raw WRITE -> EPERM", (5, EPERM),
              (c, err))
        r.request(CMD_READ, 0, 6, 0, 512)
        kind, c, err, chunks = r.reply()
        check_eq((c, err, read_data(chunks, 0, 512)), (6, 0, bytes(512)),
                 "READ after the refused WRITE")
        r.disc()
    still_serving(srv)
finish()
