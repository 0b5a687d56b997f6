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

# Structured READ replies: chunks inside the request, no overlap, full
# coverage, DONE on the last; a hole may come back as a hole chunk or as
# zeroes; with DF exactly one data chunk (reads <= 64 KiB MUST work, larger
# ones may fail with EOVERFLOW).  Plus libnbd's pread_structured view.
import nbd
from nbdproto import *

SIZE = 4 * 1024 * 1024
with memory("4M") as srv:
    h = srv.connect()
    check(h.get_structured_replies_negotiated(), "structured replies")
    h.pwrite(b"\x5a" * 65536, 1 << 20)
    h.pwrite(b"\x33" * 100, 3 << 20)
    model = bytearray(SIZE)
    model[1 << 20:(1 << 20) + 65536] = b"\x5a" * 65536
    model[3 << 20:(3 << 20) + 100] = b"\x33" * 100

    with Raw(srv.sock) as r:
        size, eflags, _, _ = r.handshake()
        check(eflags & EF_SEND_DF, "SEND_DF advertised", 1, eflags)
        cookie = 0
        for off, ln in ((0, 65536), (0, SIZE), ((1 << 20) - 100, 70000),
                        (3 << 20, 1), ((3 << 20) + 50, 200), (12345, 4096)):
            for flags in (0, CMD_FLAG_DF):
                cookie += 1
                what = "READ %d+%d flags %d" % (off, ln, flags)
                r.request(CMD_READ, flags, cookie, off, ln)
                kind, c, err, chunks = r.reply()
                check_eq((kind, c), ("structured", cookie), what + ": kind")
                if flags and err == EOVERFLOW and ln > 65536:
                    continue            # allowed for large DF reads
                check_eq(err, 0, what + ": error")
                check(chunks[-1][0] & REPLY_FLAG_DONE, what + ": DONE last")
                check(all(not f & REPLY_FLAG_DONE for f, t, p in chunks[:-1]),
                      what + ": DONE only on the last chunk")
                data = read_data(chunks, off, ln)
                check(data == bytes(model[off:off + ln]), what +
                      ": data (chunks valid, cover the request)",
                      "%d correct bytes" % ln,
                      None if data is None else "wrong data")
                content = [t for f, t, p in chunks
                           if t in (REPLY_TYPE_OFFSET_DATA,
                                    REPLY_TYPE_OFFSET_HOLE)]
                if flags & CMD_FLAG_DF:
                    check_eq(content, [REPLY_TYPE_OFFSET_DATA],
                             what + ": one data chunk with DF")
                for f, t, p in chunks:
                    if t == REPLY_TYPE_OFFSET_HOLE:
                        check(len(p) == 12 and p[8:] != b"\0\0\0\0",
                              what + ": hole chunk is 12 bytes, size > 0",
                              12, len(p))
                    elif t == REPLY_TYPE_OFFSET_DATA:
                        check(len(p) > 8, what + ": data chunk has data",
                              "> 8", len(p))
        r.disc()

    # libnbd's chunk callback: data and holes, nothing else.
    seen = []

    def chunk(buf, offset, status, err):
        seen.append((offset, len(buf), status))
        check(status in (nbd.READ_DATA, nbd.READ_HOLE), "chunk status",
              "DATA/HOLE", status)
        if status == nbd.READ_HOLE:
            check(buf == bytes(len(buf)), "hole chunk is zeroes")
        return 0

    buf = h.pread_structured(SIZE, 0, chunk)
    check(buf == bytes(model), "pread_structured data")
    check_eq(sum(n for o, n, s in seen), SIZE, "chunks cover the read")
    seen.clear()
    buf = h.pread_structured(65536, (1 << 20) - 1000, chunk,
                             nbd.CMD_FLAG_DF)
    check_eq(len(seen), 1, "one chunk with DF")
    h.shutdown()
finish()
