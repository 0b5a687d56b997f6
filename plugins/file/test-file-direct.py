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

# file plugin with cache=none (O_DIRECT): aligned round trips, the
# advertised minimum block size, unaligned requests refused with EINVAL
# (as nbdcbt-file-plugin(1) says), zeroes.  Skipped only where the file
# system does not support O_DIRECT.
import errno
import os
import nbd
from nbdcbttest import Server, scratch_dir, skip

MiB = 1 << 20
d = scratch_dir()
img = os.path.join(d, "disk.img")
with open(img, "wb") as f:
    f.truncate(4 * MiB)
try:
    os.close(os.open(img, os.O_RDONLY | os.O_DIRECT))
except OSError as e:
    if e.errno == errno.EINVAL:
        skip("the file system of %s does not support O_DIRECT" % d)
    raise

with Server.nbdcbt(["file", img, "cache=none", "fadvise=random"]) as srv:
    h = srv.connect()
    minimum = h.get_block_size(nbd.SIZE_MINIMUM)
    assert minimum in (512, 1024, 2048, 4096), minimum
    assert h.get_block_size(nbd.SIZE_PREFERRED) >= minimum

    # Aligned.
    a = os.urandom(MiB)
    h.pwrite(a, MiB)
    assert h.pread(MiB, MiB) == a
    h.pwrite(a[:65536], 0, nbd.CMD_FLAG_FUA)
    assert h.pread(65536, 0) == a[:65536]

    # Unaligned offsets and lengths are refused (EINVAL) and change
    # nothing: the server holds clients to the minimum it advertised.
    # libnbd refuses to send them in strict mode.
    strict = h.get_strict_mode()
    h.set_strict_mode(0)
    for what, call in (("write", lambda: h.pwrite(b"abc", MiB + 1)),
                       ("write", lambda: h.pwrite(b"x" * minimum, MiB + 1)),
                       ("zero", lambda: h.zero(100, MiB + 1)),
                       ("read", lambda: h.pread(3, MiB + 1))):
        try:
            call()
            raise AssertionError("unaligned %s was accepted" % what)
        except nbd.Error as e:
            assert e.errnum == errno.EINVAL, e
    assert h.pread(MiB, MiB) == a
    h.set_strict_mode(strict)

    # Aligned zero, with FUA.
    h.zero(2 * minimum, MiB + minimum, nbd.CMD_FLAG_FUA)
    got = h.pread(MiB, MiB)
    assert got[minimum:3 * minimum] == bytes(2 * minimum)
    assert got[3 * minimum:] == a[3 * minimum:]
    h.flush()
    h.shutdown()

with open(img, "rb") as f:
    f.seek(MiB)
    assert f.read(4) == a[:4]
