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

# Handshake violations the server answers by dropping that one connection
# (and only that one): unknown client flags, a bad option magic, options
# truncated or abandoned mid-way, a huge option length.
import struct
from nbdproto import *

with memory("1M") as srv:
    # A bystander connection in transmission must survive everything.
    by = srv.connect()
    by.pwrite(b"bystander", 0)

    for cflags in (0x4, 0x8000, 0xffffffff, FLAG_FIXED_NEWSTYLE | 0x100):
        with Raw(srv.sock) as r:
            r.greeting()
            r.client_flags(cflags)
            # Whatever the server does, it must not answer an option.
            try:
                r.send_option(OPT_LIST)
            except Closed:
                pass
            check(r.closed_by_server(), "unknown client flags %#x -> "
                  "disconnect" % cflags, "EOF", "still open")
        still_serving(srv, "after client flags %#x" % cflags)

    for magic in (0, IHAVEOPT ^ 1, NBDMAGIC):
        with Raw(srv.sock) as r:
            r.start()
            try:
                r.send_option(OPT_LIST, magic=magic)
            except Closed:
                pass
            check(r.closed_by_server(), "bad option magic %#x -> disconnect"
                  % magic, "EOF", "still open")
        still_serving(srv, "after option magic %#x" % magic)

    # Truncated: half a client flags word, half an option header, an
    # option whose data never comes, a GO cut after the name length; each
    # then closed by the client.
    for what, data in (("half client flags", b"\0\0"),
                       ("half an option header",
                        struct.pack(">QI", IHAVEOPT, OPT_GO)),
                       ("an option without its data",
                        struct.pack(">QII", IHAVEOPT, OPT_GO, 100)),
                       ("a huge unknown option",
                        struct.pack(">QII", IHAVEOPT, 0x7777, 0x7fffffff) +
                        bytes(1000)),
                       ("a huge GO",
                        struct.pack(">QII", IHAVEOPT, OPT_GO, 0xffffffff) +
                        struct.pack(">I", 0xfffffff0))):
        with Raw(srv.sock) as r:
            r.greeting()
            if what != "half client flags":
                r.client_flags(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
            r.send(data)
        still_serving(srv, "after " + what)

    # A GO with a 64 KiB name: way over the 4096-byte string limit.  The
    # server may refuse it (ERR_INVALID / ERR_TOO_BIG / ERR_UNKNOWN) or
    # drop the connection, and it must not accept it.
    with Raw(srv.sock) as r:
        r.start()
        try:
            reps = r.option(OPT_GO, Raw.info_data(b"n" * 65536))
            check(reps[-1][0] & 0x80000000, "GO with a 64 KiB name fails",
                  "an error", hex(reps[-1][0]))
        except Closed:
            pass
    still_serving(srv, "after a 64 KiB export name")

    # Connect and close without a word, many times.
    for _ in range(20):
        Raw(srv.sock).close()
    still_serving(srv, "after 20 silent connections")

    check_eq(by.pread(9, 0), b"bystander", "bystander connection still works")
    by.shutdown()
finish()
