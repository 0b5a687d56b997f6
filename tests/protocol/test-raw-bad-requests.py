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

# Transmission-phase requests the server must refuse with EINVAL and then
# carry on: unknown commands, unknown flags, flags on commands they do not
# apply to (the payload of a refused WRITE is still consumed).  A bad
# request magic drops that connection only.
import struct
from nbdproto import *

with memory("1M") as srv:
    for structured in (True, False):
        sfx = " (structured)" if structured else " (simple)"
        with Raw(srv.sock) as r:
            size, eflags, _, _ = r.handshake(structured=structured)
            cookie = 100

            def expect(cmd, flags, offset, length, data, want, what):
                global cookie
                cookie += 1
                r.request(cmd, flags, cookie, offset, length, data)
                kind, c, err, chunks = r.reply()
                check_eq((c, ERRNAMES.get(err, err)),
                         (cookie, ERRNAMES.get(want, want)), what + sfx)
                if structured and kind == "structured":
                    check(chunks[0][1] & 0x8000,
                          "structured error reply is an error chunk" + sfx,
                          "type 0x8001/0x8002", chunks)

            def alive(what):
                global cookie
                cookie += 1
                r.request(CMD_WRITE, 0, cookie, 8192, 4, b"live")
                check_eq(r.reply()[1:3], (cookie, 0),
                         "WRITE after " + what + sfx)
                cookie += 1
                r.request(CMD_READ, 0, cookie, 8192, 4)
                kind, c, err, chunks = r.reply(4)
                data = chunks[0] if kind == "simple" else \
                    read_data(chunks, 8192, 4)
                check_eq((c, err, data), (cookie, 0, b"live"),
                         "READ after " + what + sfx)

            for cmd in (9, 0x42, 0xffff):
                expect(cmd, 0, 0, 0, b"", EINVAL, "unknown command %#x" % cmd)
                alive("unknown command %#x" % cmd)
            expect(0x42, 0, 0, 4096, b"", EINVAL, "unknown command, length")
            alive("unknown command with a length")

            for bit in (5, 6, 7, 15):
                expect(CMD_READ, 1 << bit, 0, 512, b"", EINVAL,
                       "READ with unknown flag bit %d" % bit)
                alive("READ with flag bit %d" % bit)
                expect(CMD_WRITE, 1 << bit, 0, 512, b"w" * 512, EINVAL,
                       "WRITE with unknown flag bit %d" % bit)
                alive("WRITE with flag bit %d" % bit)

            # Known flags on commands they do not apply to.
            for cmd, flag, data, name in (
                    (CMD_READ, CMD_FLAG_REQ_ONE, b"", "READ+REQ_ONE"),
                    (CMD_READ, CMD_FLAG_NO_HOLE, b"", "READ+NO_HOLE"),
                    (CMD_READ, CMD_FLAG_FAST_ZERO, b"", "READ+FAST_ZERO"),
                    (CMD_WRITE, CMD_FLAG_DF, b"d" * 512, "WRITE+DF"),
                    (CMD_WRITE, CMD_FLAG_NO_HOLE, b"d" * 512,
                     "WRITE+NO_HOLE"),
                    (CMD_WRITE, CMD_FLAG_FAST_ZERO, b"d" * 512,
                     "WRITE+FAST_ZERO"),
                    (CMD_TRIM, CMD_FLAG_FAST_ZERO, b"", "TRIM+FAST_ZERO"),
                    (CMD_TRIM, CMD_FLAG_DF, b"", "TRIM+DF"),
                    (CMD_WRITE_ZEROES, CMD_FLAG_DF, b"", "ZERO+DF"),
                    (CMD_WRITE_ZEROES, CMD_FLAG_REQ_ONE, b"", "ZERO+REQ_ONE"),
                    (CMD_CACHE, CMD_FLAG_NO_HOLE, b"", "CACHE+NO_HOLE")):
                expect(cmd, flag, 0, 512, data, EINVAL, name)
                alive(name)
            if not structured:
                expect(CMD_READ, CMD_FLAG_DF, 0, 512, b"", EINVAL,
                       "READ+DF without structured replies")
                alive("READ+DF")
            # The refused writes changed nothing.
            cookie += 1
            r.request(CMD_READ, 0, cookie, 0, 512)
            kind, c, err, chunks = r.reply(512)
            data = chunks[0] if kind == "simple" else \
                read_data(chunks, 0, 512)
            check_eq(data, bytes(512), "refused WRITEs changed nothing" + sfx)
            r.disc()
        still_serving(srv)

    # Bad request magic: this connection is dropped, others go on.
    by = srv.connect()
    for magic in (0, 0x25609514, 0x12560953, 0x67446698, 0x21e41c71):
        with Raw(srv.sock) as r:
            r.handshake()
            r.request(CMD_READ, 0, 1, 0, 512, magic=magic)
            check(r.closed_by_server(),
                  "bad request magic %#x -> disconnect" % magic,
                  "EOF", "still open")
        still_serving(srv, "after request magic %#x" % magic)
    check_eq(by.pread(4, 8192), b"live", "bystander after bad magics")
    by.shutdown()
finish()
