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

# readonly filter: the export is read-only, reads work, writes, trims and
# zeroes fail with EPERM and change nothing (checked with libnbd's
# strict mode off, so the requests really reach the server).
import errno
import os
import subprocess
import nbd
from nbdcbttest import Server, scratch_dir

d = scratch_dir()
img = os.path.join(d, "disk.img")
with open(img, "wb") as f:
    f.write(b"\x42" * 65536)
    f.truncate(1 << 20)

with Server.nbdcbt(["--filter=readonly", "file", img]) as srv:
    out = subprocess.run(["nbdinfo", "--can", "write", srv.uri])
    assert out.returncode == 2, "nbdinfo --can write: %d" % out.returncode

    h = srv.connect()
    assert h.is_read_only()
    assert not h.can_trim()
    assert h.pread(65536, 0) == b"\x42" * 65536

    # Send the forbidden requests anyway.
    h.set_strict_mode(0)
    for name, call in [("write", lambda: h.pwrite(b"x" * 512, 0)),
                       ("trim", lambda: h.trim(65536, 0)),
                       ("zero", lambda: h.zero(65536, 0))]:
        try:
            call()
            raise AssertionError(name + " succeeded on a read-only export")
        except nbd.Error as e:
            assert e.errnum == errno.EPERM, (name, e.errnum, e)
    assert h.pread(65536, 0) == b"\x42" * 65536
    h.flush()
    h.shutdown()

with open(img, "rb") as f:
    assert f.read(65536) == b"\x42" * 65536
