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

# A chain's identity is the disk, not the export it was pulled from:
# nbdcbt-backup continues one chain from pulls through --control and from
# a view begun by hand on the control socket (backup-begin, then
# 'nbdcbt-backup inc VIEW-URI' without --control, then backup-end) --
# recognised by the view's description, which is its disk's.  Without a
# description the view is refused with a clear hint, and --node names
# the disk.  With a writer running, every restore point is the disk at
# the instant of its session, and the last one equals the disk.
import json
import os
import subprocess

from nbdcbttest import require
from sessions import BLOCK, Disk, Writer, check_instant

require("qemu-img")


def run(disk, chain, writer, points, kind, uri, *extra, hand=False):
    """One backup into CHAIN; HAND: from a view begun here by hand."""
    c0 = writer.count() if writer else 0
    sid = None
    if hand:
        r = q.cmd("backup-begin", node="disk0", bitmap="b0")
        sid, uri = r["id"], disk.uri(r["export"])
    p = subprocess.run(["nbdcbt-backup", kind, uri, "-o", chain, "--bitmap",
                        "b0", "-q"] + list(extra), capture_output=True,
                       text=True)
    c1 = writer.count() if writer else 0
    if sid:
        q.cmd("backup-end", id=sid, success=p.returncode == 0)
        q.wait_event("BACKUP_SESSION_COMPLETED", id=sid)
    if p.returncode == 0:
        points.append((len(points), c0, c1))
    return p


def check_points(disk, chain, ops, points):
    restored = os.path.join(disk.dir, "restored.raw")
    last = 0
    for index, c0, c1 in points:
        subprocess.run(["nbdcbt-backup", "restore", chain, "--until",
                        str(index), "-o", restored, "-q"], check=True)
        with open(restored, "rb") as f:
            k = check_instant(f.read(), disk.blocks, ops,
                              "restore point %d" % index,
                              within=(c0, c1 + 1))
        assert k >= last, (index, last, k)
        last = k
    return restored


# --- A disk with a description: the hand view continues the chain. -------
disk = Disk(blocks=256, fmt="qcow2", description="vm1 root disk")
q = disk.qmp()
chain = os.path.join(disk.dir, "chain")
ctl = ["--control", disk.ctl, "--node", "disk0"]
writer = Writer(disk, "disk0")
writer.wait_writes(200)
points = []
p = run(disk, chain, writer, points, "full", disk.uri("disk0"), *ctl)
assert p.returncode == 0, p.stderr
writer.wait_writes(200)
p = run(disk, chain, writer, points, "inc", None, hand=True)
assert p.returncode == 0, "a hand view did not continue the chain: " + \
    p.stderr
writer.wait_writes(200)
p = run(disk, chain, writer, points, "inc", disk.uri("disk0"), *ctl)
assert p.returncode == 0, p.stderr
writer.wait_writes(200)
p = run(disk, chain, writer, points, "inc", None, hand=True)
assert p.returncode == 0, p.stderr
ops = writer.stop()
p = run(disk, chain, None, [], "inc", None, hand=True)
assert p.returncode == 0, p.stderr
points.append((len(points), len(ops), len(ops)))
restored = check_points(disk, chain, ops, points)
# One chain of five backups (not a new chain started on the way).
with open(os.path.join(chain, "manifest.json")) as f:
    assert len(json.load(f)["backups"]) == 5
h = disk.connect("disk0")
live = b"".join(h.pread(BLOCK * 16, off)
                for off in range(0, disk.size, BLOCK * 16))
with open(restored, "rb") as f:
    assert f.read() == live, "the last restore point differs from the disk"
q.close()
disk.stop()

# --- No description: refused with a hint; --node names the disk. ---------
disk = Disk(blocks=64, fmt="qcow2")
q = disk.qmp()
chain = os.path.join(disk.dir, "chain")
points = []
p = run(disk, chain, None, points, "full", disk.uri("disk0"), "--control",
        disk.ctl, "--node", "disk0")
assert p.returncode == 0, p.stderr
p = run(disk, chain, None, points, "inc", None, hand=True)
assert p.returncode != 0
assert 'the chain was taken from export "disk0", this is export "backup-' \
    in p.stderr and "--node" in p.stderr, p.stderr
p = run(disk, chain, None, points, "inc", None, "--node", "disk0",
        hand=True)
assert p.returncode == 0, p.stderr
assert len(points) == 2
q.close()
disk.stop()
print("ok")
