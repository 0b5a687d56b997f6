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

# Clients that stop half-way: a WRITE header claiming 1 GiB (or a valid
# 1 MiB) whose payload never arrives, truncated request headers, a client
# that closes mid-payload.  The stalled connection may be dropped or wait,
# but a SECOND connection must keep being served meanwhile, and the
# server survives when the stalled one goes away.
import struct
import time
from nbdproto import *

with memory("4M") as srv:
    other = srv.connect()
    other.pwrite(b"before", 0)

    for length, what in ((1 << 30, "1 GiB"), (1 << 20, "1 MiB")):
        st = Raw(srv.sock)
        st.handshake()
        st.request(CMD_WRITE, 0, 1, 65536, length, b"s" * 4096)
        time.sleep(0.2)
        # The other connection goes on while the WRITE is stuck.
        t0 = time.time()
        for i in range(20):
            other.pwrite(struct.pack(">I", i) * 128, 512 * i)
            check_eq(other.pread(512, 512 * i), struct.pack(">I", i) * 128,
                     "other connection during a stalled %s WRITE" % what)
        check(time.time() - t0 < 10, "other connection not held up",
              "< 10 s", time.time() - t0)
        still_serving(srv, "during a stalled %s WRITE" % what)
        # For 1 GiB (beyond the 32 MiB maximum) an error reply or a drop
        # are fine; either way nothing is written.
        if length > 32 << 20:
            st.s.settimeout(2)
            try:
                kind, c, err, _ = st.reply()
                check(err != 0, "1 GiB WRITE not acknowledged", "an error",
                      ERRNAMES.get(err, err))
            except (Closed, OSError):
                pass
        st.close()
        still_serving(srv, "after closing a stalled %s WRITE" % what)

    # Clients idle in the handshake (greeting read, nothing sent; client
    # flags sent, no option; half an option) do not hold anyone up.
    idle = []
    for stage in range(3):
        for _ in range(3):
            c = Raw(srv.sock)
            c.greeting()
            if stage >= 1:
                c.client_flags(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
            if stage >= 2:
                c.send(struct.pack(">QI", IHAVEOPT, OPT_GO))
            idle.append(c)
    t0 = time.time()
    still_serving(srv, "while 9 clients idle in the handshake")
    check_eq(other.pread(6, 0), b"\0\0\0\0\0\0", "other connection while "
             "clients idle in the handshake")
    check(time.time() - t0 < 10, "not held up by idle handshakes", "< 10 s",
          time.time() - t0)
    for c in idle:
        c.close()

    # Truncated requests, then close.
    for what, data in (("10 bytes of a header",
                        struct.pack(">IHHQ", REQUEST_MAGIC, 0, CMD_READ, 1)[:10]),
                       ("a header without its length",
                        struct.pack(">IHHQQ", REQUEST_MAGIC, 0, CMD_WRITE, 1,
                                    0)),
                       ("a WRITE with 100 of 512 bytes",
                        struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_WRITE, 1,
                                    0, 512) + b"t" * 100),
                       ("a READ, then close at once",
                        struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_READ, 1,
                                    0, 1 << 20))):
        with Raw(srv.sock) as r:
            r.handshake()
            r.send(data)
        still_serving(srv, "after " + what)

    # Nothing from the half-written requests reached the disk.
    check_eq(other.pread(6, 0), b"\0\0\0\0\0\0",
             "data at 0 (written by the other connection)")
    check_eq(other.pread(4096, 65536), bytes(4096),
             "stalled WRITEs wrote nothing")
    other.shutdown()
finish()
