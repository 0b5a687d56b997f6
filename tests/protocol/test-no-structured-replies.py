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

# Without structured replies: simple replies work for read, write, flush,
# trim, zero; block status is unavailable and DF is not advertised.
import nbd
from nbdproto import *

with memory("1M") as srv:
    h = srv.connect(structured=False, meta_contexts=["base:allocation"])
    check(not h.get_structured_replies_negotiated(),
          "structured replies not negotiated", False, True)
    check(not h.can_meta_context("base:allocation"),
          "no meta context without structured replies", False, True)
    check(not h.can_df(), "DF not advertised without structured replies",
          False, True)
    data = bytes(range(256)) * 20 + b"tail"
    h.pwrite(data, 1000)
    check_eq(h.pread(len(data), 1000), data, "simple-reply read of a write")
    check_eq(h.pread(100, 0), bytes(100), "simple-reply read of zeroes")
    if h.can_flush():
        h.flush()
    if h.can_trim():
        h.trim(4096, 65536)
    if h.can_zero():
        h.zero(4096, 1000)
        check_eq(h.pread(4096, 1000), bytes(4096), "read after zero")
    h.set_strict_mode(0)
    expect_errno(lambda: h.block_status(4096, 0, lambda *a: 0), {22, 95},
                 "block status without structured replies")
    # The connection is still good after the refused request.
    check_eq(h.pread(10, 1000), bytes(10), "read after refused block status")
    h.shutdown()

    # By hand: every reply to a non-structured client is simple.
    with Raw(srv.sock) as r:
        size, eflags, _, _ = r.handshake(structured=False)
        check(not eflags & EF_SEND_DF, "no SEND_DF flag", 0, eflags)
        r.request(CMD_WRITE, cookie=7, offset=0, length=5, data=b"hello")
        kind, cookie, err, _ = r.reply()
        check_eq((kind, cookie, err), ("simple", 7, 0), "WRITE reply")
        r.request(CMD_READ, cookie=8, offset=0, length=5)
        kind, cookie, err, d = r.reply(5)
        check_eq((kind, cookie, err, d), ("simple", 8, 0, [b"hello"]),
                 "READ reply")
        r.request(CMD_FLUSH, cookie=9)
        check_eq(r.reply()[:3], ("simple", 9, 0), "FLUSH reply")
        r.request(CMD_READ, cookie=10, offset=size, length=512)
        kind, cookie, err, _ = r.reply(512)
        check_eq((kind, cookie, err), ("simple", 10, EINVAL),
                 "READ past the end: simple EINVAL")
        r.request(CMD_BLOCK_STATUS, cookie=11, offset=0, length=512)
        kind, cookie, err, _ = r.reply()
        check_eq((kind, cookie, err), ("simple", 11, EINVAL),
                 "BLOCK_STATUS without structured replies")
        r.request(CMD_READ, cookie=12, offset=0, length=5)
        check_eq(r.reply(5), ("simple", 12, 0, [b"hello"]),
                 "READ after the errors")
        r.disc()
    still_serving(srv)
finish()
