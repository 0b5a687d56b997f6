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

# Clients of a session's view that stop reading their replies (many large
# READs sent, no reply read) hold up neither backup-end nor the server's
# stop: backup-end returns within seconds, SIGTERM stops the server
# within seconds (not after the 60 s send timeout), the session ends as
# failed (its bitmap reclaimed: after a restart the next incremental
# still has every write since the last successful backup).
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "protocol"))
from nbdproto import CMD_READ, Raw  # noqa: E402
from sessions import BLOCK, Disk  # noqa: E402

disk = Disk(blocks=256, fmt="qcow2")
q = disk.qmp()
CTX = "qemu:dirty-bitmap:b0"
WRITTEN = (3, 7, 200)


def stuck_client(export):
    """A client of EXPORT that sent 4 MiB READs and reads no reply."""
    c = Raw(disk.sock)
    c.handshake(export.encode())
    for i in range(48):
        c.request(CMD_READ, 0, i + 1, (i % 4) * (4 << 20), 4 << 20)
    return c


def dirty_blocks(export):
    h = disk.connect(export, [CTX])
    ext = []
    h.block_status(disk.size, 0,
                   lambda ctx, off, e, err: ext.extend(e) if ctx == CTX
                   else 0)
    h.shutdown()
    out, off = set(), 0
    for i in range(0, len(ext), 2):
        if ext[i + 1] & 1:
            out.update(range(off // BLOCK, (off + ext[i]) // BLOCK))
        off += ext[i]
    return out


h = disk.connect("disk0")
for b in WRITTEN:
    h.pwrite(b"x" * BLOCK, b * BLOCK)
h.flush()
h.shutdown()

# backup-end while a view client is stuck.
q.cmd("backup-begin", node="disk0", id="one")
c1 = stuck_client("backup-one")
time.sleep(1)
t0 = time.monotonic()
q.cmd("backup-end", id="one", success=True)
took = time.monotonic() - t0
assert took < 10, "backup-end took %.1f s with a stuck client" % took
c1.close()

# SIGTERM while a view client of an incremental session is stuck.
q.cmd("backup-begin", node="disk0", bitmap="b0", id="two")
assert dirty_blocks("backup-two") >= set(WRITTEN)
c2 = stuck_client("backup-two")
time.sleep(1)
t0 = time.monotonic()
disk.stop()
took = time.monotonic() - t0
assert took < 10, "the server took %.1f s to stop with a stuck client" % took
c2.close()
q.close()

# Ended as failed: the frozen bits are back in b0.
disk.start()
q = disk.qmp()
q.cmd("backup-begin", node="disk0", bitmap="b0", id="three")
missing = set(WRITTEN) - dirty_blocks("backup-three")
assert not missing, "blocks %s lost from b0" % sorted(missing)
q.cmd("backup-end", id="three", success=True)
q.close()
disk.stop()
print("ok (backup-end and stop within seconds)")
