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

# file plugin: data round trip, FUA, flush, cache, trim punches a hole,
# write zeroes (plain, MAY_TRIM, FAST_ZERO), read-only serving.
import os
import nbd
from nbdcbttest import Server, scratch_dir, extents

MiB = 1 << 20
d = scratch_dir()
img = os.path.join(d, "disk.img")
with open(img, "wb") as f:
    f.truncate(8 * MiB)


def allocated(path):
    return os.stat(path).st_blocks * 512


with Server.nbdcbt(["file", img]) as srv:
    h = srv.connect(meta_contexts=["base:allocation"])
    assert h.get_size() == 8 * MiB
    assert h.can_flush() and h.can_fua() and h.can_multi_conn()
    assert h.can_zero() and not h.is_read_only()

    # Round trip, unaligned, with and without FUA; the file holds it too.
    data = bytes((i * 13 + 1) & 0xff for i in range(300001))
    h.pwrite(data, 12345)
    h.pwrite(b"last", 8 * MiB - 4, nbd.CMD_FLAG_FUA)
    assert h.pread(len(data), 12345) == data
    assert h.pread(4, 8 * MiB - 4) == b"last"
    h.flush()
    with open(img, "rb") as f:
        f.seek(12345)
        assert f.read(len(data)) == data
    if h.can_cache():
        h.cache(MiB, 0)

    # Trim punches a hole: the file's allocation shrinks and the range
    # reads back as zeroes (our file systems zero punched holes).
    if h.can_trim():
        h.pwrite(b"\xaa" * (2 * MiB), 4 * MiB)
        h.flush()
        before = allocated(img)
        h.trim(2 * MiB, 4 * MiB)
        after = allocated(img)
        assert after <= before - 2 * MiB + 65536, (before, after)
        assert h.pread(2 * MiB, 4 * MiB) == bytes(2 * MiB)
        assert extents(h, "base:allocation", 4 * MiB, 2 * MiB) == \
            [(4 * MiB, 2 * MiB, nbd.STATE_HOLE | nbd.STATE_ZERO)]
    else:
        print("file system cannot punch holes: trim not advertised")

    # Write zeroes: partial, with MAY_TRIM (may punch), FAST_ZERO (either
    # succeeds or fails with ENOTSUP and changes nothing).
    h.pwrite(b"\x55" * MiB, 2 * MiB)
    h.zero(1000, 2 * MiB + 10)
    got = h.pread(MiB, 2 * MiB)
    assert got == b"\x55" * 10 + bytes(1000) + b"\x55" * (MiB - 1010)
    h.zero(MiB, 2 * MiB, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FUA)
    assert h.pread(MiB, 2 * MiB) == bytes(MiB)
    h.pwrite(b"\x66" * MiB, 2 * MiB)
    h.zero(MiB, 2 * MiB)   # MAY_TRIM (no NO_HOLE flag)
    assert h.pread(MiB, 2 * MiB) == bytes(MiB)
    if h.can_fast_zero():
        h.pwrite(b"\x77" * 4096, 2 * MiB)
        try:
            h.zero(4096, 2 * MiB, nbd.CMD_FLAG_FAST_ZERO)
            assert h.pread(4096, 2 * MiB) == bytes(4096)
        except nbd.Error as e:
            assert e.errnum == __import__("errno").ENOTSUP, e
            assert h.pread(4096, 2 * MiB) == b"\x77" * 4096
    h.shutdown()

# Read-only server: the file is opened read-only, writes refused.
with Server.nbdcbt(["file", img], extra=["-r"]) as srv:
    h = srv.connect()
    assert h.is_read_only()
    assert h.pread(len(data), 12345) == data
    try:
        h.pwrite(b"x", 0)
        raise AssertionError("write on a read-only export succeeded")
    except nbd.Error:
        pass
    h.shutdown()
with open(img, "rb") as f:
    assert f.read(1) == b"\0"

# The shorthand: a bare file name means the file plugin.
with Server.nbdcbt([img]) as srv:
    h = srv.connect()
    assert h.pread(4, 8 * MiB - 4) == b"last"
    h.shutdown()
