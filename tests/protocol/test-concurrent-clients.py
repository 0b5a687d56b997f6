#!/usr/bin/python3
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
