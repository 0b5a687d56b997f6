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

"""Concurrent clients through the server on qcow2 images whose metadata
is shared tightly: 512-byte clusters with 1-bit refcounts, and extended
L2 entries (subclusters) with 1-bit refcounts.  Six connections at once,
each a few hundred mixed writes, zeroes, trims and flushes with its own
random lengths, all in stripes interleaved with the others' (so they
share L2 tables and refcount blocks, not bytes).  Then: what the server
reads back, and the image qemu-img reads after a clean stop, equal a
model; qemu-img check finds no corruption and no leak; the persistent
bitmap covers every change."""

import os
import random
import threading

from nbdcbttest import (Server, check, check_qcow2_image, extents, finish,
                        require, run, scratch_dir)

require("qemu-img")

CONNS = 6
OPS = 300
STRIPE = 16384
SIZE = 6 * 1024 * 1024
d = scratch_dir()






def stripes_of(c):
    """The stripes connection C owns."""
    return [s for s in range(SIZE // STRIPE) if s % CONNS == c]


def client(srv, c, cluster, model, errors, touched):
    rnd = random.Random(1000 + c)
    try:
        h = srv.connect()
        mine = stripes_of(c)
        for i in range(OPS):
            s = rnd.choice(mine) * STRIPE
            off = s + rnd.randrange(STRIPE)
            length = rnd.randrange(1, STRIPE - (off - s) + 1)
            op = rnd.random()
            if op < 0.55:
                buf = bytes([rnd.randrange(1, 256)]) * length
                h.pwrite(buf, off)
                model[off:off + length] = buf
            elif op < 0.75:
                h.zero(length, off)
                model[off:off + length] = bytes(length)
            elif op < 0.9:
                h.trim(length, off)
                # Whole clusters inside the range read as zeroes (no
                # backing file); the rest is left alone.
                a = (off + cluster - 1) // cluster * cluster
                b = (off + length) // cluster * cluster
                if b > a:
                    model[a:b] = bytes(b - a)
            else:
                h.flush()
                continue
            touched.append((off, length))
        h.flush()
        h.shutdown()
    except Exception as e:      # reported by the main thread
        errors.append("connection %d: %r" % (c, e))


def covered(ext, off, length):
    end = off + length
    for (o, n, flags) in ext:
        if flags & 1 and o <= off < o + n:
            if o + n >= end:
                return True
            off = o + n
    return False


def case(label, opts, cluster):
    img = os.path.join(d, label + ".qcow2")
    p = run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, img,
             str(SIZE)])
    if p.returncode != 0:
        check(False, "%s: qemu-img create" % label, p.stderr)
        return
    run(["qemu-img", "bitmap", "--add", img, "b0"])
    model = bytearray(SIZE)
    errors, touched = [], []
    with Server.nbdcbt([img], extra=["-t", "8"]) as srv:
        threads = [threading.Thread(target=client,
                                    args=(srv, c, cluster, model, errors,
                                          touched))
                   for c in range(CONNS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        check(not errors, "%s: %d connections x %d requests succeed"
              % (label, CONNS, OPS), errors)
        h = srv.connect(["qemu:dirty-bitmap:b0"])
        served = h.pread(SIZE, 0) if SIZE <= 32 * 1024 * 1024 else b""
        ext = extents(h, "qemu:dirty-bitmap:b0")
        h.shutdown()
        check(served == bytes(model), "%s: the server reads back the model"
              % label)
        bad = [t for t in touched if not covered(ext, *t)]
        check(not bad, "%s: bitmap b0 covers every change" % label, bad[:5])
        rc = srv.stop()
    check(rc == 0, "%s: clean stop" % label)
    check_qcow2_image(label, img, model)


case("c512-r1", "cluster_size=512,refcount_bits=1", 512)
case("c64k-extl2-r1", "cluster_size=65536,extended_l2=on,refcount_bits=1",
     65536)
case("c16k-extl2-r16", "cluster_size=16384,extended_l2=on", 16384)

finish()
