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

# BLOCK_STATUS for base:allocation, checked on the wire: one status chunk
# for the one selected context, descriptors with nonzero lengths,
# consecutive from the request offset, covering the request (only the
# last may overshoot); with REQ_ONE exactly one descriptor, never longer
# than asked.  And sound: anything reported ZERO reads as zeroes, written
# data is never reported as a hole.
import struct
import nbd
from nbdproto import *

SIZE = 4 * 1024 * 1024
DATA = [(0, 4096), (65536, 65536), (1 << 20, 12345), (SIZE - 512, 512)]

with memory("4M") as srv:
    h = srv.connect(meta_contexts=["base:allocation"])
    for off, ln in DATA:
        h.pwrite(b"\xa5" * ln, off)
    h.zero(8192, 200000)        # may leave a hole or write zeroes

    with Raw(srv.sock) as r:
        size, eflags, _, ctx = r.handshake(meta=[b"base:allocation"])
        check(list(ctx) == ["base:allocation"], "SET selected one context",
              ["base:allocation"], list(ctx))
        cid = ctx.get("base:allocation")
        cookie = 0
        reqs = [(0, SIZE), (0, 4096), (1, 1), (4095, 2), (60000, 200000),
                (SIZE - 512, 512), (SIZE - 1, 1), (1 << 20, 1 << 20),
                (12345, 3000000), (2 << 20, 65536)]
        for off, ln in reqs:
            for flags in (0, CMD_FLAG_REQ_ONE):
                cookie += 1
                what = "BLOCK_STATUS %d+%d flags %d" % (off, ln, flags)
                r.request(CMD_BLOCK_STATUS, flags, cookie, off, ln)
                kind, c, err, chunks = r.reply()
                if not check_eq((kind, c, err), ("structured", cookie, 0),
                                what):
                    continue
                bs = [p for f, t, p in chunks if t == REPLY_TYPE_BLOCK_STATUS]
                others = [t for f, t, p in chunks
                          if t not in (REPLY_TYPE_BLOCK_STATUS,
                                       REPLY_TYPE_NONE)]
                check_eq((len(bs), others), (1, []),
                         what + ": one BLOCK_STATUS chunk, nothing else")
                check(chunks[-1][0] & REPLY_FLAG_DONE, what + ": DONE last")
                if not bs:
                    continue
                p = bs[0]
                check((len(p) - 4) % 8 == 0 and len(p) >= 12,
                      what + ": payload is 4 + 8n bytes, n >= 1",
                      "4 + 8n", len(p))
                check_eq(struct.unpack(">I", p[:4])[0], cid,
                         what + ": context id")
                ext = [struct.unpack(">II", p[i:i + 8])
                       for i in range(4, len(p) - 7, 8)]
                check(all(e[0] > 0 for e in ext), what +
                      ": no zero-length extents", "all > 0", ext)
                check(all(e[1] & ~3 == 0 for e in ext), what +
                      ": only HOLE|ZERO bits", "flags <= 3", ext)
                if flags & CMD_FLAG_REQ_ONE:
                    check(len(ext) == 1 and ext[0][0] <= ln,
                          what + ": exactly one extent, <= the request",
                          "1 extent <= %d" % ln, ext)
                else:
                    before_last = sum(e[0] for e in ext[:-1])
                    check(before_last < ln, what +
                          ": only the last extent may reach the end",
                          "< %d" % ln, ext)
                # Soundness against the data.
                pos = off
                for elen, eflags in ext:
                    n = min(elen, SIZE - pos)
                    check(pos + elen <= SIZE, what + ": extent within "
                          "the export", "<= %d" % SIZE, (pos, elen))
                    if n <= 0:
                        break
                    if eflags & 2:
                        check(h.pread(n, pos) == bytes(n), what +
                              ": ZERO extent at %d+%d reads as zeroes"
                              % (pos, n))
                    if eflags & 1:
                        for doff, dln in DATA:
                            check(pos + n <= doff or pos >= doff + dln,
                                  what + ": written data reported as a hole",
                                  "no overlap with %d+%d" % (doff, dln),
                                  (pos, n, eflags))
                    pos += elen
        r.disc()

    # The same through libnbd (it checks the structure too).
    ext = nbdcbttest.extents(h, "base:allocation")
    check_eq(sum(e[1] for e in ext), SIZE, "extents cover the disk")
    h.shutdown()
    still_serving(srv)
finish()
