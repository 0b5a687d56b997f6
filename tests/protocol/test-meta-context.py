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

# Metadata context negotiation: LIST_META_CONTEXT with no query, "base:",
# "base:allocation" and an unknown namespace; SET (done by libnbd during
# INFO/GO) selecting base:allocation; can_meta_context.
import nbd
from nbdproto import *


def list_meta(srv, queries):
    h = srv.connect(opt_mode=True)
    h.clear_meta_contexts()
    for q in queries:
        h.add_meta_context(q)
    got = []
    n = h.opt_list_meta_context(lambda name: got.append(name) or 0)
    check_eq(n, len(got), "opt_list_meta_context count vs callbacks")
    h.opt_abort()
    return got


with memory("1M") as srv:
    got = list_meta(srv, [])
    check("base:allocation" in got, "LIST with no query lists "
          "base:allocation", "contains base:allocation", got)
    got = list_meta(srv, ["base:"])
    check("base:allocation" in got, "LIST 'base:' lists base:allocation",
          "contains base:allocation", got)
    check(all(c.startswith("base:") for c in got),
          "LIST 'base:' lists only base: contexts", "base:*", got)
    got = list_meta(srv, ["base:allocation"])
    check_eq(got, ["base:allocation"], "LIST 'base:allocation'")
    got = list_meta(srv, ["x-nosuch:thing"])
    check_eq(got, [], "LIST of an unknown namespace")
    got = list_meta(srv, ["base:nosuchleaf"])
    check_eq(got, [], "LIST of an unknown base: leaf")
    got = list_meta(srv, ["x-nosuch:thing", "base:allocation"])
    check_eq(got, ["base:allocation"], "LIST unknown + base:allocation")

    # SET through INFO, then GO.
    h = srv.connect(opt_mode=True, meta_contexts=["base:allocation"])
    h.opt_info()
    check(h.can_meta_context("base:allocation"),
          "can_meta_context(base:allocation) after INFO", True, False)
    h.opt_go()
    check(h.can_meta_context("base:allocation"),
          "can_meta_context(base:allocation) after GO", True, False)
    ents = []
    h.block_status(65536, 0,
                   lambda m, o, e, err: ents.append((m, e)) or 0)
    check(len(ents) == 1 and ents[0][0] == "base:allocation",
          "one block status chunk for base:allocation", 1, ents)
    h.shutdown()

    # SET of an unknown context selects nothing; block status unavailable.
    h = srv.connect(meta_contexts=["x-nosuch:thing"])
    check(not h.can_meta_context("base:allocation"),
          "base:allocation not selected when not asked for", False, True)
    check(not h.can_meta_context("x-nosuch:thing"),
          "unknown context not selected", False, True)
    h.set_strict_mode(0)
    expect_errno(lambda: h.block_status(4096, 0, lambda *a: 0),
                 {22, 95}, "block status with no context selected")
    h.shutdown()
    still_serving(srv)

# By hand: SET with base:allocation and unknown contexts; ids are
# unique; LIST of "base:" in SET selects nothing.
with memory("1M") as srv:
    with Raw(srv.sock) as r:
        r.start()
        check_eq(r.option(OPT_STRUCTURED_REPLY)[-1][0], REP_ACK,
                 "STRUCTURED_REPLY")
        reps = r.option(OPT_SET_META_CONTEXT, Raw.meta_data(
            b"", [b"x-nosuch:thing", b"base:allocation", b"base:"]))
        check_eq(reps[-1][0], REP_ACK, "SET final reply")
        names = [p[4:] for t, p in reps if t == REP_META_CONTEXT]
        check_eq(names, [b"base:allocation"],
                 "SET selects only base:allocation")
        reps = r.option(OPT_SET_META_CONTEXT, Raw.meta_data(b"", []))
        check_eq(reps, [(REP_ACK, b"")], "SET with no query selects nothing")
        reps = r.option(OPT_LIST_META_CONTEXT, Raw.meta_data(b"", []))
        check_eq(reps[-1][0], REP_ACK, "LIST with no query: ACK")
        # Truncated LIST data (query count says 1, nothing follows).
        reps = r.option(OPT_LIST_META_CONTEXT,
                        Raw.meta_data(b"", [])[:-4] + b"\0\0\0\1")
        check_eq(reps[-1][0], ERR_INVALID, "truncated LIST data")
        size, eflags, infos, ctx = (None,) * 4
        reps = r.option(OPT_GO, Raw.info_data())
        check_eq(reps[-1][0], REP_ACK, "GO after the SETs")
        r.disc()
    still_serving(srv)

finish()
