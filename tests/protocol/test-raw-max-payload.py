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

# The maximum payload boundary: READ and WRITE of exactly 32 MiB succeed
# (the spec's default maximum; servers SHOULD NOT treat it as DoS); a
# WRITE of 32 MiB + 512 whose payload is really sent is refused with
# EINVAL, or the connection is dropped, and nothing is written (checked
# when the server advertised a maximum payload below that, as nbdcbt and
# qemu-nbd do; nbdkit 1.32's memory plugin advertises none, takes 64 MiB).
import struct
from nbdproto import *

MAX = 32 << 20
with memory("80M") as srv:
    for structured in (True, False):
        with Raw(srv.sock, timeout=60) as r:
            r.handshake(structured=structured)
            data = bytes([0x40 + structured]) * MAX
            r.request(CMD_WRITE, 0, 1, 4096, MAX, data)
            check_eq(r.reply()[1:3], (1, 0), "WRITE of 32 MiB")
            r.request(CMD_READ, 0, 2, 4096, MAX)
            kind, c, err, chunks = r.reply(MAX)
            got = chunks[0] if kind == "simple" else \
                read_data(chunks, 4096, MAX)
            check((c, err) == (2, 0) and got == data, "READ of 32 MiB",
                  "32 MiB of %#x" % data[0],
                  (c, err, None if got is None else len(got)))
            r.disc()

    big = MAX + 512
    with Raw(srv.sock, timeout=60) as r:
        _, _, infos, _ = r.handshake()
        bs = infos.get(INFO_BLOCK_SIZE)
        advertised = struct.unpack(">HIII", bs)[3] if bs else None
        if SERVER == "nbdcbt":
            check_eq(advertised, MAX, "advertised maximum payload")
        if advertised is None or advertised >= big:
            r.disc()
            finish()
        try:
            r.request(CMD_WRITE, 0, 3, 40 << 20, big, b"\x77" * big)
            kind, c, err, _ = r.reply()
            check(err in (EINVAL, EOVERFLOW, ENOMEM),
                  "WRITE of 32 MiB + 512", "EINVAL or a drop",
                  ERRNAMES.get(err, err))
            # If it answered, the connection must still be in step.
            r.request(CMD_READ, 0, 4, 40 << 20, 512)
            kind, c, err, chunks = r.reply(512)
            check_eq((c, err, read_data(chunks, 40 << 20, 512)),
                     (4, 0, bytes(512)), "READ after the refused WRITE")
        except (Closed, OSError):
            pass
    still_serving(srv, "after an oversized WRITE")
    h = srv.connect()
    check_eq(h.pread(512, 40 << 20), bytes(512),
             "the oversized WRITE wrote nothing")
    h.shutdown()
finish()
