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

# NBD_CMD_DISC sent right behind a burst of requests.  The spec: "the
# server MUST handle all outstanding requests ... and close the
# connection".  nbdcbt completes them all (every reply arrives with
# success and the data is written).  The reference servers are looser
# (nbdkit answers late ones with ESHUTDOWN, qemu-nbd may close before the
# last replies), so against them we check only that whatever was
# acknowledged was written and that the connection is closed.
import struct
from nbdproto import *

N = 32
strict = SERVER == "nbdcbt"
with memory("1M") as srv:
    for structured in (True, False):
        with Raw(srv.sock) as r:
            r.handshake(structured=structured)
            burst = b""
            for i in range(N):
                burst += struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_WRITE,
                                     1000 + i, 8192 * i, 8192)
                burst += bytes([i + 1 + structured]) * 8192
            burst += struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_FLUSH,
                                 2000, 0, 0)
            burst += struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_DISC,
                                 3000, 0, 0)
            r.send(burst)
            ok = set()
            try:
                for _ in range(N + 1):
                    kind, c, err, _ = r.reply()
                    check(err == 0 or (not strict and err == ESHUTDOWN),
                          "reply to request %d" % c, "OK",
                          ERRNAMES.get(err, err))
                    if err == 0:
                        ok.add(c)
            except Closed as e:
                check(not strict, "replies before DISC", N + 1,
                      "%d then %s" % (len(ok), e))
            if strict:
                check_eq(ok, set(range(1000, 1000 + N)) | {2000},
                         "every request before DISC succeeded")
            check(r.closed_by_server(), "server closes after DISC", "EOF",
                  "still open")
        h = srv.connect()
        for i in range(N):
            if 1000 + i in ok:
                check_eq(h.pread(8192, 8192 * i),
                         bytes([i + 1 + structured]) * 8192,
                         "data of write %d before DISC" % i)
        h.shutdown()
finish()
