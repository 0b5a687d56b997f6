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

"""Structured READs of large ranges send OFFSET_HOLE chunks for holes; a
connection whose reads keep finding data probes less often (backs off),
and still finds holes again later.  The data is right in every case."""
import os

import nbd

NBDCBT = os.environ["NBDCBT"]
M = 1024 * 1024
K64 = 64 * 1024

h = nbd.NBD()
h.connect_systemd_socket_activation([NBDCBT, "memory", "size=8M"])
assert h.get_structured_replies_negotiated()
data = bytes(range(256)) * (4 * M // 256)
h.pwrite(data, 0)                       # [0, 4M) data, [4M, 8M) a hole


def read(offset, count):
    """Read, returning (buffer, number of hole chunks)."""
    holes = [0]

    def chunk(sub, off, status, err):
        if status == nbd.READ_HOLE:
            holes[0] += 1
            assert sub == bytes(len(sub))
        return 0

    buf = h.pread_structured(count, offset, chunk)
    return buf, holes[0]


# A fresh connection probes: the hole comes back as a hole chunk.
buf, holes = read(4 * M, M)
assert buf == bytes(M) and holes >= 1, holes
# Mixed data and hole.
buf, holes = read(4 * M - K64, 2 * K64)
assert buf == data[-K64:] + bytes(K64) and holes == 1, holes

# Many reads of data: probes find nothing and the connection backs off.
for i in range(300):
    off = (i * K64) % (4 * M)
    buf, holes = read(off, K64)
    assert buf == data[off:off + K64] and holes == 0

# Holes are found again within the longest back-off (1024 reads).
for i in range(1100):
    buf, holes = read(4 * M + (i * K64) % (4 * M), K64)
    assert buf == bytes(K64)
    if holes:
        break
else:
    raise SystemExit("no hole chunk after 1100 reads of a hole")
# ... and from then on every hole read is probed again.
for i in range(5):
    buf, holes = read(5 * M, K64)
    assert buf == bytes(K64) and holes == 1, (i, holes)
h.shutdown()
