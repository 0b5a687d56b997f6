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

# The delta view and stock nbdcopy, with a writer running: a mirror kept
# by nbdcopy alone (a full copy of the first session's view, then only
# the changes from each later session's delta view) equals the disk at
# each session's instant.  The invocation documented in nbdcbt(1):
#
#   nbdcopy --destination-is-zero -S 0 DELTA-URI MIRROR-URI
#
# --destination-is-zero makes nbdcopy skip what the delta reports as
# hole+zero (the unchanged areas: the mirror already has them); -S 0
# turns off its detection of zero blocks in data, which would otherwise
# skip the changed areas that were zeroed or trimmed.  The mirror is
# served over NBD: nbdcopy truncates a regular-file destination.
import os
import subprocess

from nbdcbttest import Server, require
from sessions import Disk, Writer, check_instant

require("nbdcopy")
disk = Disk(blocks=256)
q = disk.qmp()
mirror = os.path.join(disk.dir, "mirror.raw")
with open(mirror, "wb") as f:
    f.truncate(disk.size)

writer = Writer(disk, "disk0")
writer.wait_writes(200)


def nbdcopy(*args):
    subprocess.run(["nbdcopy"] + list(args), check=True)


def mirror_bytes():
    with open(mirror, "rb") as f:
        return f.read()


with Server.nbdcbt(["file", mirror]) as m:
    # The first copy: the whole view (a full session that freezes b0).
    r = q.cmd("backup-begin", node="disk0", bitmap="b0", sync="full")
    writer.wait_writes(100)
    nbdcopy(disk.uri(r["export"]), m.uri)
    q.cmd("backup-end", id=r["id"], success=True)
    last = check_instant(mirror_bytes(), disk.blocks, writer.ops(),
                         "the mirror after the full copy")

    for i in range(3):
        writer.wait_writes(300)
        c0 = writer.count()
        r = q.cmd("backup-begin", node="disk0", bitmap="b0", delta=True)
        c1 = writer.count()
        writer.wait_writes(100)
        nbdcopy("--destination-is-zero", "-S", "0",
                disk.uri(r["delta-export"]), m.uri)
        q.cmd("backup-end", id=r["id"], success=True)
        k = check_instant(mirror_bytes(), disk.blocks, writer.ops(),
                          "the mirror after delta %d" % (i + 1),
                          within=(c0, c1 + 1))
        assert last <= k, (last, k)
        last = k

ops = writer.stop()
# The writer zeroed and trimmed some blocks: the -S 0 part was needed.
assert any(kind in "zt" for _, kind, _ in ops)
q.close()
disk.stop()
print("ok: mirror at the instant of each of 4 sessions")
