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

# Offsets and lengths by hand: past the end (READ/TRIM/CACHE/BLOCK_STATUS
# EINVAL, WRITE/WRITE_ZEROES ENOSPC, the WRITE payload still consumed),
# offset + length overflowing 64 bits, zero-length requests (success or
# EINVAL, never a dropped connection), READ over 32 MiB (EINVAL, or the
# connection dropped).
import struct
from nbdproto import *

SIZE = 1024 * 1024
with memory("1M") as srv:
    with Raw(srv.sock) as r:
        size, eflags, _, ctx = r.handshake(meta=[b"base:allocation"])
        check_eq(size, SIZE, "size")
        cookie = [0]

        def do(cmd, flags, offset, length, data=b"", read_len=0):
            cookie[0] += 1
            r.request(cmd, flags, cookie[0], offset, length, data)
            kind, c, err, chunks = r.reply(read_len)
            check_eq(c, cookie[0], "reply cookie")
            return err, chunks

        def alive(what):
            err, chunks = do(CMD_READ, 0, 0, 4)
            check_eq((err, read_data(chunks, 0, 4)), (0, b"data"),
                     "READ after " + what)

        check_eq(do(CMD_WRITE, 0, 0, 4, b"data")[0], 0, "WRITE at 0")

        cases = [
            (CMD_READ, SIZE, 512, b"", {EINVAL}, "READ at the end"),
            (CMD_READ, SIZE - 512, 1024, b"", {EINVAL}, "READ across the end"),
            (CMD_READ, 1 << 62, 512, b"", {EINVAL}, "READ at 2^62"),
            (CMD_WRITE, SIZE, 512, b"x" * 512, {ENOSPC}, "WRITE at the end"),
            (CMD_WRITE, SIZE - 512, 1024, b"x" * 1024, {ENOSPC},
             "WRITE across the end"),
            (CMD_WRITE, (1 << 64) - 512, 1024, b"x" * 1024, {ENOSPC, EINVAL},
             "WRITE with offset + length overflowing"),
            (CMD_READ, (1 << 64) - 512, 1024, b"", {EINVAL},
             "READ with offset + length overflowing"),
            (CMD_TRIM, SIZE - 512, 1024, b"", {EINVAL}, "TRIM across the end"),
            (CMD_WRITE_ZEROES, SIZE - 512, 1024, b"", {ENOSPC},
             "WRITE_ZEROES across the end"),
            (CMD_CACHE, SIZE - 512, 1024, b"", {EINVAL},
             "CACHE across the end"),
            (CMD_BLOCK_STATUS, SIZE, 512, b"", {EINVAL},
             "BLOCK_STATUS at the end"),
            (CMD_BLOCK_STATUS, (1 << 64) - 512, 1024, b"", {EINVAL},
             "BLOCK_STATUS with offset + length overflowing"),
        ]
        for cmd, off, ln, data, want, what in cases:
            if SERVER == "qemu-nbd":
                want = want | {EINVAL}  # qemu-nbd 7.2 ignores the ENOSPC SHOULD
            err, _ = do(cmd, 0, off, ln, data)
            check(err in want, what, "/".join(ERRNAMES[w] for w in want),
                  ERRNAMES.get(err, err))
            alive(what)

        # Zero-length requests (unspecified): success or EINVAL (ENOSPC for
        # WRITE/ZERO, as nbdkit does), and the stream stays in step (a
        # zero-length READ reply carries no data).
        for cmd, name in ((CMD_READ, "READ"), (CMD_WRITE, "WRITE"),
                          (CMD_TRIM, "TRIM"), (CMD_WRITE_ZEROES, "ZERO"),
                          (CMD_CACHE, "CACHE"),
                          (CMD_BLOCK_STATUS, "BLOCK_STATUS")):
            err, chunks = do(cmd, 0, 4096, 0)
            check(err in (0, EINVAL, ENOSPC), "zero-length " + name,
                  "OK/EINVAL/ENOSPC", ERRNAMES.get(err, err))
            alive("zero-length " + name)
        err, _ = do(CMD_FLUSH, 0, 0, 0)
        check_eq(err, 0, "FLUSH")
        alive("FLUSH")
        r.disc()
    still_serving(srv)

    # READ of 64 MiB (over the 32 MiB maximum payload): EINVAL, or the
    # connection is dropped; the server must not try to serve it.
    with Raw(srv.sock) as r:
        r.handshake()
        r.request(CMD_READ, 0, 1, 0, 64 << 20)
        try:
            kind, c, err, chunks = r.reply()
            check(err in (EINVAL, EOVERFLOW, ENOMEM), "READ of 64 MiB",
                  "EINVAL (or a dropped connection)", ERRNAMES.get(err, err))
        except Closed:
            pass
    still_serving(srv, "after a 64 MiB READ")
finish()
