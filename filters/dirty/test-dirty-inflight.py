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

"""A write still in flight below the dirty filter when its bitmap is
cleared (block-dirty-bitmap-clear, or in a transaction) is not lost.

The filter marks a write's bits before the write goes down (its intent
record needs that order).  A clear between the mark and the data's
arrival made the bitmap forget the write while a reader, right after the
clear, still saw the old data: the next incremental backup missed the
write.  Now a clear waits for the writes already marked, as QEMU drains
a node for a transaction (QEMU marks a write once it is done): after it
returns, the write is either in the data a reader sees or in the
bitmap.  nbdkit's delay filter below the dirty filter holds each write
for a second.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests",
                                "interop"))
sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "qmp"))
import nbd                                          # noqa: E402
from nbdcbttest import Server, extents, require, scratch_dir  # noqa: E402
from qmptest import QMP, _wait_for                  # noqa: E402

require("nbdkit")
delay = os.path.join(os.popen("pkg-config nbdkit --variable=filterdir")
                     .read().strip(), "nbdkit-delay-filter.so")
if not os.path.exists(delay):
    print("skipped: nbdkit's delay filter is not installed")
    sys.exit(77)

ctl = os.path.join(scratch_dir(), "inflight-ctl.sock")
srv = Server.nbdcbt(["--filter=dirty", "--filter=nbdkit:delay", "memory",
                     "size=1M", "wdelay=1", "bitmap=b0"],
                    extra=["--control", ctl, "-e", "disk"],
                    export="disk")
try:
    _wait_for(ctl, srv.proc)
    q = QMP(ctl)
    h2 = srv.connect()
    for i, command in enumerate(("block-dirty-bitmap-clear",
                                 "transaction")):
        h = srv.connect(["qemu:dirty-bitmap:b0"])
        new = bytes([0x41 + i]) * 4096
        cookie = h.aio_pwrite(new, 65536)
        time.sleep(0.3)             # the write is in the delay filter
        t0 = time.monotonic()
        if command == "transaction":
            q.cmd("transaction", actions=[
                {"type": "block-dirty-bitmap-clear",
                 "data": {"node": "disk", "name": "b0"}}])
        else:
            q.cmd(command, node="disk", name="b0")
        waited = time.monotonic() - t0
        seen = h2.pread(4096, 65536)
        while not h.aio_command_completed(cookie):
            h.poll(-1)
        dirty = [(o, n) for o, n, f in extents(h, "qemu:dirty-bitmap:b0")
                 if f == 1 and o <= 65536 and o + n >= 65536 + 4096]
        print("%s: waited %.2f s, data %s, bitmap %s" %
              (command, waited, "new" if seen == new else "old",
               "dirty" if dirty else "clean"))
        assert seen == new or dirty, \
            "%s: the write is neither in the data nor in the bitmap" % command
        h.shutdown()
    h2.shutdown()
    q.close()
finally:
    srv.stop()
print("ok")
