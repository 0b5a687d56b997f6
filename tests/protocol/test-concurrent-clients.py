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

# 6 client processes, each with its own connection, write disjoint regions
# at the same time (with some reads of their own data in between); then
# every region is verified from a fresh connection.
import multiprocessing
import os
import nbd
from nbdproto import *

NCLIENTS = 6
REGION = 1 << 20
BS = 32768


def client(sock, i, q):
    try:
        h = nbd.NBD()
        h.connect_unix(sock)
        base = i * REGION
        for j in range(REGION // BS):
            pat = bytes([(i * 37 + j) & 0xff]) * BS
            h.pwrite(pat, base + j * BS)
            if j % 5 == 0 and h.pread(BS, base + j * BS) != pat:
                q.put("client %d: read back wrong data at block %d" % (i, j))
                return
        h.flush()
        h.shutdown()
        q.put(None)
    except Exception as e:
        q.put("client %d: %r" % (i, e))


with memory("%dM" % NCLIENTS) as srv:
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(srv.sock, i, q))
             for i in range(NCLIENTS)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    for res in results:
        check(res is None, "concurrent client", "success", res)
    h = srv.connect()
    for i in range(NCLIENTS):
        for j in range(REGION // BS):
            pat = bytes([(i * 37 + j) & 0xff]) * BS
            check(h.pread(BS, i * REGION + j * BS) == pat,
                  "client %d block %d" % (i, j))
    h.shutdown()
finish()
