#!/usr/bin/env python3
"""Many requests in flight with mixed sizes (headers and payloads split
across the server's input buffer in every way): reads see exactly what
was written, on every worker thread count."""
import os
import random

import nbd

NBDCBT = os.environ["NBDCBT"]
SLOT = 1024 * 1024 + 8192
SLOTS = 24
SIZES = [1, 28, 512, 4096, 4124, 8191, 8192, 9000, 16384, 65536, 1024 * 1024]


def run(threads, seed):
    rnd = random.Random(seed)
    h = nbd.NBD()
    h.connect_systemd_socket_activation(
        [NBDCBT, "-t", str(threads), "memory", "size=%d" % (SLOT * SLOTS)])
    model = bytearray(SLOT * SLOTS)
    busy = set()
    pending = []

    def reap():
        while h.aio_in_flight() > 0 and len(pending) >= 16:
            h.poll(-1)
            done = [p for p in pending if h.aio_command_completed(p[0])]
            for p in done:
                pending.remove(p)
                busy.discard(p[1])
                if p[2] is not None:
                    off, want, buf = p[2]
                    assert buf.to_bytearray() == want, (threads, seed, off)

    for i in range(600):
        reap()
        free = [s for s in range(SLOTS) if s not in busy]
        slot = rnd.choice(free)
        size = rnd.choice(SIZES)
        off = slot * SLOT + rnd.randrange(0, SLOT - size + 1)
        if rnd.random() < 0.5:
            data = bytes([rnd.randrange(256)]) * size
            model[off:off + size] = data
            cookie = h.aio_pwrite(data, off)
            pending.append((cookie, slot, None))
        else:
            buf = nbd.Buffer(size)
            cookie = h.aio_pread(buf, off)
            pending.append((cookie, slot, (off, bytes(model[off:off + size]),
                                           buf)))
        busy.add(slot)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for cookie, slot, check in pending:
        assert h.aio_command_completed(cookie)
        if check is not None:
            off, want, buf = check
            assert buf.to_bytearray() == want, (threads, seed, off)
    assert h.pread(SLOT * SLOTS, 0) == model
    h.shutdown()


for threads, seed in ((16, 1), (1, 2), (3, 3)):
    run(threads, seed)
