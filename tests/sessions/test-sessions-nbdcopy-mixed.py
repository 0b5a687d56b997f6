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

# The delta view with stock nbdcopy when clean and changed granules
# share one of nbdcopy's 256 KiB requests: nbdcopy reads the whole
# request and (with -S 0) writes all of it onto the mirror, so the clean
# granules in it must read as the disk's data at the instant.  They used
# to read as zeroes and wiped the mirror's copy of them.  A clean granule
# overwritten during the session must still read as before the instant.
import os
import subprocess

from nbdcbttest import Server, require
from sessions import BLOCK, Disk, initial_block, stamped_block

require("nbdcopy")
disk = Disk(blocks=8)
q = disk.qmp()
mirror = os.path.join(disk.dir, "mirror.raw")
with open(mirror, "wb") as f:
    f.truncate(disk.size)
h = disk.connect("disk0")


def copy(uri, dst, *args):
    subprocess.run(["nbdcopy"] + list(args) + [uri, dst], check=True)


def mirror_blocks():
    with open(mirror, "rb") as f:
        data = f.read()
    return [data[b * BLOCK:(b + 1) * BLOCK] for b in range(disk.blocks)]


with Server.nbdcbt(["file", mirror]) as m:
    r = q.cmd("backup-begin", node="disk0", bitmap="b0", sync="full")
    copy(disk.uri(r["export"]), m.uri)
    q.cmd("backup-end", id=r["id"], success=True)
    assert mirror_blocks() == [initial_block(b) for b in range(8)]

    # Block 0 changes: blocks 1-3 are clean, in the same 256 KiB request.
    h.pwrite(stamped_block(1, 0), 0)
    r = q.cmd("backup-begin", node="disk0", bitmap="b0", delta=True)
    # After the instant: a clean block and the changed one are written.
    h.pwrite(stamped_block(2, 1), BLOCK)
    h.pwrite(stamped_block(3, 0), 0)
    copy(disk.uri(r["delta-export"]), m.uri, "--destination-is-zero",
         "-S", "0")
    q.cmd("backup-end", id=r["id"], success=True)
    want = [stamped_block(1, 0)] + [initial_block(b) for b in range(1, 8)]
    got = mirror_blocks()
    bad = [b for b in range(8) if got[b] != want[b]]
    assert not bad, "mirror blocks %s are not the disk at the instant" % bad

h.shutdown()
q.close()
disk.stop()
print("ok: clean granules read by nbdcopy kept the mirror's data")
