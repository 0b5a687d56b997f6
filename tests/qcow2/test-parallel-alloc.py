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

"""Allocating writes in parallel.  Four connections, each with eight
requests in flight, write into a new image at once: large writes into
1 MiB stripes interleaved between the connections (new clusters of the
same L2 tables and refcount blocks, allocated side by side), small
writes into single 512-byte sectors owned round-robin by the
connections (so several connections allocate the same cluster at the
same time, each needing the others' bytes kept), and zeroes; the
connections first walk the shared area together, so that most of its
clusters get allocated by several writers at once.  Images:
64 KiB clusters; 4 KiB clusters with 1-bit refcounts (many L2 tables
and refcount blocks); 64 KiB clusters over a backing file (partial
clusters copied from it).  Then: what the server reads back equals a
model; the server's debug log shows allocations whose data was written
at the same time; after a clean stop qemu-img check finds no corruption
and no leak and qemu-img compare finds the image equal to the model."""

import os
import random
import re
import threading

from nbdcbttest import (NBDCBT, Server, check, check_qcow2_image, finish,
                        require, run, scratch_dir)

require("qemu-img")
require("qemu-io")

CONNS = 4
DEPTH = 8
SIZE = 48 * 1024 * 1024
STRIPE = 1024 * 1024
SHARED = 16 * 1024 * 1024       # [0, SHARED): small writes, by sector
d = scratch_dir()


def client(srv, c, ops, cluster, model, errors, barrier):
    rnd = random.Random(7000 + c)
    stripes = [s for s in range(SHARED // STRIPE, SIZE // STRIPE)
               if s % CONNS == c]
    inflight = []               # (cookie, off, len)
    try:
        h = srv.connect()

        def reap(block):
            while True:
                for x in list(inflight):
                    if h.aio_command_completed(x[0]):
                        inflight.remove(x)
                if not block or not inflight:
                    return
                h.poll(-1)
                block = False

        def overlaps(off, n):
            return any(o < off + n and off < o + m for (_, o, m) in inflight)

        barrier.wait(60)
        # First all connections walk the shared area together, each
        # writing into its own sectors of the same new clusters, so most
        # of these clusters are allocated by several writers at once;
        # then random requests.
        walk = SHARED // cluster
        for i in range(walk + ops):
            op = rnd.random()
            if i < walk:
                sec = (i * cluster // 512 +
                       rnd.randrange(cluster // 512 // CONNS) * CONNS + c)
                a = rnd.randrange(512)
                n = rnd.randrange(1, 512 - a + 1)
                off = sec * 512 + a
                buf = bytes([rnd.randrange(1, 256)]) * n
            elif op < 0.5:
                # A small write inside one sector of ours, in the
                # shared area.
                sec = rnd.randrange(SHARED // 512 // CONNS) * CONNS + c
                a = rnd.randrange(512)
                n = rnd.randrange(1, 512 - a + 1)
                off = sec * 512 + a
                buf = bytes([rnd.randrange(1, 256)]) * n
            else:
                s = rnd.choice(stripes) * STRIPE
                if op < 0.9:
                    a = rnd.randrange(0, STRIPE, 4096) \
                        if rnd.random() < 0.5 else rnd.randrange(STRIPE)
                    n = rnd.randrange(1, STRIPE - a + 1)
                    buf = bytes([rnd.randrange(1, 256)]) * n
                else:
                    a = rnd.randrange(STRIPE // 2)
                    n = rnd.randrange(1, STRIPE // 2)
                    buf = None
                off = s + a
            while overlaps(off, n) or len(inflight) >= DEPTH:
                reap(True)
            if buf is None:
                cookie = h.aio_zero(n, off)
                model[off:off + n] = bytes(n)
            else:
                cookie = h.aio_pwrite(buf, off)
                model[off:off + n] = buf
            inflight.append((cookie, off, n))
        while inflight:
            reap(True)
        h.flush()
        h.shutdown()
    except Exception as e:      # reported by the main thread
        errors.append("connection %d: %r" % (c, e))


def case(label, opts, cluster, ops, backing=False, want_parallel=True):
    img = os.path.join(d, label + ".qcow2")
    log = os.path.join(d, label + ".log")
    model = bytearray(SIZE)
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-o", opts]
    if backing:
        base = os.path.join(d, label + ".base.qcow2")
        p = run(["qemu-img", "create", "-q", "-f", "qcow2", base, str(SIZE)])
        check(p.returncode == 0, "%s: create the backing file" % label,
              p.stderr)
        p = run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xb5 0 %d" % SIZE,
                 base])
        check(p.returncode == 0, "%s: fill the backing file" % label,
              p.stdout + p.stderr)
        model[:] = b"\xb5" * SIZE
        argv += ["-b", base, "-F", "qcow2"]
    p = run(argv + [img, str(SIZE)])
    if p.returncode != 0:
        check(False, "%s: qemu-img create" % label, p.stderr)
        return
    run(["qemu-img", "bitmap", "--add", img, "b0"])

    errors = []
    sd = os.path.join(d, label + ".srv")
    os.mkdir(sd)
    sock, pid = os.path.join(sd, "sock"), os.path.join(sd, "pid")
    # The library's test hook keeps each allocating write 2 ms in
    # flight with the metadata lock released: writers of the same
    # cluster meet there unless they wait for each other.
    argv = ["env", "NBDCBT_QCOW2_TEST_ALLOC_DELAY_US=2000",
            "sh", "-c", 'exec "$0" "$@" 2>>"%s"' % log,
            NBDCBT, "-f", "-v", "-t", "8", "-U", sock, "-P", pid, img]
    with Server(argv, sock, pid, check_exit=True) as srv:
        barrier = threading.Barrier(CONNS)
        threads = [threading.Thread(target=client,
                                    args=(srv, c, ops, cluster, model,
                                          errors, barrier))
                   for c in range(CONNS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        check(not errors, "%s: %d connections x %d requests succeed"
              % (label, CONNS, ops), errors)
        h = srv.connect()
        served = b"".join(h.pread(4 << 20, o)
                          for o in range(0, SIZE, 4 << 20))
        h.shutdown()
        check(served == bytes(model), "%s: the server reads back the model"
              % label)
        rc = srv.stop()
    check(rc == 0, "%s: clean stop" % label)
    with open(log) as f:
        text = f.read()
    m = re.search(r"(\d+) allocating writes, at most (\d+) in parallel",
                  text)
    check(m is not None, "%s: the server reports its allocations" % label,
          text[-2000:])
    if m:
        print("%s: %s allocating writes, at most %s in parallel"
              % (label, m.group(1), m.group(2)))
        if want_parallel:
            check(int(m.group(2)) >= 2,
                  "%s: allocating writes proceeded in parallel" % label,
                  m.group(0))
    check_qcow2_image(label, img, model)
    # And qemu-io reads the shared area, where connections met in the
    # same clusters, as the model says.
    off = random.Random(label).randrange(SHARED // 65536) * 65536
    pat = model[off]
    if model[off:off + 512] == bytes([pat]) * 512:
        p = run(["qemu-io", "-f", "qcow2", "-r", "-c",
                 "read -P %d %d 512" % (pat, off), img])
        check(p.returncode == 0 and "Pattern verification failed"
              not in p.stdout, "%s: qemu-io reads the model" % label,
              p.stdout + p.stderr)
    os.unlink(img)


case("c64k", "cluster_size=65536", 65536, 600)
case("c4k-r1", "cluster_size=4096,refcount_bits=1", 4096, 400)
case("c64k-backing", "cluster_size=65536", 65536, 300, backing=True)

finish()
