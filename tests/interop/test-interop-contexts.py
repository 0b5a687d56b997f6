#!/usr/bin/env python3
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

"""Metadata context negotiation and what marks a bitmap, on each server:

- LIST with no query, with "qemu:" and with "qemu:dirty-bitmap:" lists the
  bitmaps; "base:" does not;
- SET of a wildcard ("qemu:dirty-bitmap:") or of an unknown bitmap
  selects nothing; an exact name selects it;
- base:allocation and a bitmap together: one chunk for each per reply;
- reads, flush, cache and block status mark nothing; write, trim and
  write-zeroes mark (partial granules too), in every bitmap at once.
"""

import sys

from interop import (SERVERS, connect, nbd, nbdcbttest, requirements,
                     start)

requirements()

G = 4096
SIZE = 1 << 20
BITMAPS = ("b0", "b1")
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


def listing(srv, queries):
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_unix(srv.sock)
    for q in queries:
        h.add_meta_context(q)
    names = []

    def cb(name):
        names.append(name)
        return 0
    h.opt_list_meta_context(cb)
    h.opt_abort()
    return sorted(names)


def selected(srv, queries):
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_unix(srv.sock)
    for q in queries:
        h.add_meta_context(q)
    h.opt_go()
    sel = [c for c in ["base:allocation", "qemu:dirty-bitmap:b0",
                       "qemu:dirty-bitmap:b1", "qemu:dirty-bitmap:"]
           + list(queries) if h.can_meta_context(c)]
    h.shutdown()
    return sorted(set(sel))


results = {}
for name in SERVERS:
    with start(name, G, size=SIZE, bitmaps=BITMAPS) as srv:
        r = results[name] = {}
        bm = ["qemu:dirty-bitmap:" + b for b in BITMAPS]

        r["list-none"] = listing(srv, [])
        if not set(bm) <= set(r["list-none"]) \
           or "base:allocation" not in r["list-none"]:
            fail("%s: LIST without query: %r" % (name, r["list-none"]))
        r["list-qemu"] = listing(srv, ["qemu:"])
        if not set(bm) <= set(r["list-qemu"]) \
           or "base:allocation" in r["list-qemu"]:
            fail("%s: LIST qemu: %r" % (name, r["list-qemu"]))
        r["list-bm"] = listing(srv, ["qemu:dirty-bitmap:"])
        if r["list-bm"] != bm:
            fail("%s: LIST qemu:dirty-bitmap: %r" % (name, r["list-bm"]))
        r["list-base"] = listing(srv, ["base:"])
        if r["list-base"] != ["base:allocation"]:
            fail("%s: LIST base: %r" % (name, r["list-base"]))
        r["list-b1"] = listing(srv, ["qemu:dirty-bitmap:b1"])
        if r["list-b1"] != ["qemu:dirty-bitmap:b1"]:
            fail("%s: LIST qemu:dirty-bitmap:b1: %r" % (name, r["list-b1"]))
        r["list-unknown"] = listing(srv, ["qemu:dirty-bitmap:nope"])
        if r["list-unknown"] != []:
            fail("%s: LIST unknown: %r" % (name, r["list-unknown"]))

        r["set-wild"] = selected(srv, ["qemu:dirty-bitmap:"])
        if r["set-wild"] != []:
            fail("%s: SET of a wildcard selected %r" % (name, r["set-wild"]))
        r["set-qemu"] = selected(srv, ["qemu:"])
        if r["set-qemu"] != []:
            fail("%s: SET qemu: selected %r" % (name, r["set-qemu"]))
        r["set-unknown"] = selected(srv, ["qemu:dirty-bitmap:nope"])
        if r["set-unknown"] != []:
            fail("%s: SET unknown selected %r" % (name, r["set-unknown"]))
        r["set-b1"] = selected(srv, ["qemu:dirty-bitmap:b1"])
        if r["set-b1"] != ["qemu:dirty-bitmap:b1"]:
            fail("%s: SET b1 selected %r" % (name, r["set-b1"]))

        # Both contexts: one chunk each, per reply.
        h = connect(srv, ["base:allocation"] + bm)
        h.pwrite(b"x" * 100, 5000)
        chunks = {}

        def cb(meta, off, ents, err):
            chunks[meta] = chunks.get(meta, 0) + 1
            return 0
        h.block_status(SIZE, 0, cb)
        r["chunks"] = chunks
        if chunks != {"base:allocation": 1, bm[0]: 1, bm[1]: 1}:
            fail("%s: chunks per context %r" % (name, chunks))

        # Under REQ_ONE: still one chunk per context, one extent each.
        ones = {}

        def cb1(meta, off, ents, err):
            ones.setdefault(meta, []).append(len(ents) // 2)
            return 0
        h.block_status(SIZE, 0, cb1, nbd.CMD_FLAG_REQ_ONE)
        r["req-one"] = ones
        if ones != {"base:allocation": [1], bm[0]: [1], bm[1]: [1]}:
            fail("%s: REQ_ONE with three contexts: %r" % (name, ones))

        def maps():
            return [nbdcbttest.extents(h, c) for c in bm]

        before = maps()
        exp = [(0, 4096, 0), (4096, 4096, 1), (8192, SIZE - 8192, 0)]
        if before != [exp, exp]:
            fail("%s: write 100@5000 marked %r" % (name, before))
        # Nothing of this marks.
        h.pread(70000, 1000)
        h.pread(1, SIZE - 1)
        h.flush()
        if h.can_cache():
            h.cache(65536, 131072)
        h.block_status(SIZE, 0, cb)
        h.block_status(4096, 4096 * 20, cb, nbd.CMD_FLAG_REQ_ONE)
        if maps() != before:
            fail("%s: read/flush/cache/block status marked: %r"
                 % (name, maps()))
        # Trim and zero mark, partial granules too.
        h.trim(10, 100 * 4096 + 4095)       # granules 100 and 101
        h.zero(4098, 200 * 4096 - 1)        # granules 199, 200, 201
        exp = [(0, 4096, 0), (4096, 4096, 1), (8192, 98 * 4096, 0),
               (100 * 4096, 2 * 4096, 1), (102 * 4096, 97 * 4096, 0),
               (199 * 4096, 3 * 4096, 1), (202 * 4096, SIZE - 202 * 4096, 0)]
        r["after"] = maps()
        if r["after"] != [exp, exp]:
            fail("%s: trim/zero marked %r" % (name, r["after"]))
        h.shutdown()
    print("%s: done" % name)

if len(results) == 2:
    for k in results["qemu-nbd"]:
        if results["qemu-nbd"][k] != results["nbdcbt"][k]:
            fail("%s differs: qemu-nbd %r, nbdcbt %r"
                 % (k, results["qemu-nbd"][k], results["nbdcbt"][k]))

sys.exit(1 if failures else 0)
