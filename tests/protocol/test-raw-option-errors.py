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

# Option haggling errors, each followed by a working option on the same
# connection: unknown option, LIST with data, INFO/GO whose name length
# overruns the option, STRUCTURED_REPLY twice or with data,
# LIST/SET_META_CONTEXT before STRUCTURED_REPLY, STARTTLS without TLS.
import struct
from nbdproto import *

SIZE = 1024 * 1024
with memory("1M") as srv:
    def works(r, what):
        """INFO of the default export succeeds on R."""
        reps = r.option(OPT_INFO, Raw.info_data())
        check_eq(reps[-1][0], REP_ACK, "INFO works after " + what)

    with Raw(srv.sock) as r:
        r.start()
        for opt in (0x7654321, 4, 0xffff, 0x80000000):
            reps = r.option(opt, b"some data")
            check_eq(reps, [(ERR_UNSUP, reps[-1][1])],
                     "unknown option %#x -> ERR_UNSUP" % opt)
            works(r, "unknown option %#x" % opt)

        check_eq(r.option(OPT_LIST, b"x")[-1][0], ERR_INVALID,
                 "LIST with data -> ERR_INVALID")
        works(r, "LIST with data")

        for opt, name in ((OPT_INFO, "INFO"), (OPT_GO, "GO")):
            # Name length 100, but only 6 bytes of option data in all.
            bad = struct.pack(">IH", 100, 0)
            check_eq(r.option(opt, bad)[-1][0], ERR_INVALID,
                     name + ": name length past the option -> ERR_INVALID")
            works(r, name + " with a lying name length")
            # Info count says 3 requests, only one there.
            bad = struct.pack(">IHH", 0, 3, INFO_EXPORT)
            check_eq(r.option(opt, bad)[-1][0], ERR_INVALID,
                     name + ": info count past the option -> ERR_INVALID")
            works(r, name + " with a lying info count")
            # Too short to hold even the name length.
            check_eq(r.option(opt, b"\0\0")[-1][0], ERR_INVALID,
                     name + ": 2 bytes of data -> ERR_INVALID")
            works(r, name + " with 2 bytes of data")

    with Raw(srv.sock) as r:
        r.start()

    # (nbdkit caps the number of options per connection: fresh one.)
    with Raw(srv.sock) as r:
        r.start()
        # qemu-nbd and nbdkit answer LIST, refuse only SET.
        got = r.option(OPT_LIST_META_CONTEXT,
                       Raw.meta_data(b"", [b"base:allocation"]))[-1][0]
        check(got in (REP_ACK, ERR_INVALID),
              "LIST_META_CONTEXT before STRUCTURED_REPLY",
              "ACK or ERR_INVALID", hex(got))
        works(r, "early LIST_META_CONTEXT")
        check_eq(r.option(OPT_SET_META_CONTEXT,
                          Raw.meta_data(b"", [b"base:allocation"]))[-1][0],
                 ERR_INVALID, "SET_META_CONTEXT before STRUCTURED_REPLY")
        works(r, "early SET_META_CONTEXT")

        got = r.option(OPT_STARTTLS)[-1][0]
        check(got in (ERR_POLICY, ERR_UNSUP), "STARTTLS without TLS",
              "ERR_POLICY or ERR_UNSUP", hex(got))
        works(r, "STARTTLS")

        check_eq(r.option(OPT_STRUCTURED_REPLY, b"x")[-1][0], ERR_INVALID,
                 "STRUCTURED_REPLY with data -> ERR_INVALID")
        works(r, "STRUCTURED_REPLY with data")
        check_eq(r.option(OPT_STRUCTURED_REPLY)[-1][0], REP_ACK,
                 "first STRUCTURED_REPLY")
        second = r.option(OPT_STRUCTURED_REPLY)[-1][0]
        check(second in (REP_ACK, ERR_INVALID), "second STRUCTURED_REPLY",
              "ACK or ERR_INVALID", hex(second))
        works(r, "second STRUCTURED_REPLY")

        # Now meta contexts are allowed; a lying query length is refused.
        bad = Raw.meta_data(b"", []) [:-4] + struct.pack(">II", 1, 500) + \
            b"base:allocation"
        check_eq(r.option(OPT_LIST_META_CONTEXT, bad)[-1][0], ERR_INVALID,
                 "LIST_META_CONTEXT with a query past the data")
        check_eq(r.option(OPT_SET_META_CONTEXT, bad)[-1][0], ERR_INVALID,
                 "SET_META_CONTEXT with a query past the data")
        bad = struct.pack(">I", 4000) + b"abc"
        check_eq(r.option(OPT_LIST_META_CONTEXT, bad)[-1][0], ERR_INVALID,
                 "LIST_META_CONTEXT with an export name past the data")
        # A query over the 4096-byte string limit, and 1000 queries: a
        # reply (ACK, ERR_TOO_BIG, ERR_INVALID) or a drop, never a crash.
        for q in ([b"base:" + b"a" * 5000], [b"x-q:%d" % i
                                             for i in range(1000)]):
            try:
                got = r.option(OPT_LIST_META_CONTEXT,
                               Raw.meta_data(b"", q))[-1][0]
                check(got in (REP_ACK, ERR_TOO_BIG, ERR_INVALID),
                      "LIST_META_CONTEXT of huge queries",
                      "ACK/ERR_TOO_BIG/ERR_INVALID", hex(got))
            except Closed:
                break
        else:
            works(r, "bad meta context options")
            r.send_option(OPT_ABORT)

    still_serving(srv, "after huge meta context queries")
    with Raw(srv.sock) as r:
        r.start()
        check_eq(r.option(OPT_STRUCTURED_REPLY)[-1][0], REP_ACK,
                 "STRUCTURED_REPLY")
        # And GO still enters transmission with structured replies.
        reps = r.option(OPT_GO, Raw.info_data())
        check_eq(reps[-1][0], REP_ACK, "GO at the end")
        r.structured = True
        r.request(CMD_READ, cookie=5, offset=0, length=512)
        kind, cookie, err, chunks = r.reply()
        check_eq((kind, cookie, err), ("structured", 5, 0),
                 "structured READ after all that")
        check_eq(read_data(chunks, 0, 512), bytes(512), "READ data")
        r.disc()
    still_serving(srv)
finish()
