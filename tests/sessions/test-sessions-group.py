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

# Several disks at one instant: nbdcbt-backup --node disk0 --node disk1
# begins both sessions in one transaction with completion-mode grouped
# (qcow2 exports, whose default chain is fleece, dirty, qcow2), each disk
# into its own chain DIR/NODE, with a writer on each disk.  Every restore
# point of each chain is its disk at one instant within the run; when the
# backup of one disk fails (its chain directory is locked by another
# backup), both sessions end as failed and both bitmaps are given back:
# the next incremental of each disk still restores exactly.
import fcntl
import os
import subprocess

from nbdcbttest import require
from sessions import Disk, Writer, check_instant

require("qemu-img")
nodes = ("disk0", "disk1")
disk = Disk(blocks=128, nodes=nodes)
q = disk.qmp()
out = os.path.join(disk.dir, "chains")
restored = os.path.join(disk.dir, "restored.raw")
writers = {n: Writer(disk, n, seed=i + 1) for i, n in enumerate(nodes)}
points = {n: [] for n in nodes}
for w in writers.values():
    w.wait_writes(100)


def backup(kind, expect_ok=True):
    c0 = {n: writers[n].count() for n in nodes}
    p = subprocess.run(["nbdcbt-backup", kind, disk.uri("disk0"), "-o", out,
                        "--bitmap", "b0", "-q", "--control", disk.ctl,
                        "--node", "disk0", "--node", "disk1"],
                       stderr=subprocess.PIPE)
    c1 = {n: writers[n].count() for n in nodes}
    if expect_ok:
        assert p.returncode == 0, p.stderr
        for n in nodes:
            points[n].append((len(points[n]), c0[n], c1[n]))
    return p


def check():
    for n in nodes:
        ops = writers[n].ops()
        last = 0
        for index, c0, c1 in points[n]:
            subprocess.run(["nbdcbt-backup", "restore",
                            os.path.join(out, n), "--until", str(index),
                            "-o", restored, "-q"], check=True)
            with open(restored, "rb") as f:
                k = check_instant(f.read(), disk.blocks, ops,
                                  "%s restore point %d" % (n, index),
                                  within=(c0, c1 + 1))
            assert k >= last, (n, index, last, k)
            last = k


backup("full")
e = q.wait_event("BACKUP_GROUP_COMPLETED", success=True)
assert len(e["data"]["ids"]) == 2, e
for w in writers.values():
    w.wait_writes(200)
backup("inc")
q.wait_event("BACKUP_GROUP_COMPLETED", success=True)
check()

# disk1's chain is locked by "another backup": disk0 succeeds, disk1
# fails, and the group fails: both bitmaps reclaimed.
for w in writers.values():
    w.wait_writes(200)
q.cmd("query-backups")         # collect the events sent so far
q.events.clear()
lock = open(os.path.join(out, "disk1", ".lock"), "w")
fcntl.flock(lock, fcntl.LOCK_EX)
p = backup("inc", expect_ok=False)
assert p.returncode != 0 and b"another backup" in p.stderr, p.stderr
e = q.wait_event("BACKUP_GROUP_COMPLETED", success=False)
for n in nodes:
    d = q.wait_event("BACKUP_SESSION_COMPLETED", node=n)["data"]
    assert d["bitmap-action"] == "reclaim", d
fcntl.flock(lock, fcntl.LOCK_UN)
lock.close()
# disk0's chain got a layer all the same (published before disk1 failed).
subprocess.run(["nbdcbt-backup", "verify", os.path.join(out, "disk0")],
               check=True, stdout=subprocess.DEVNULL)
points["disk0"].append((len(points["disk0"]), 0, writers["disk0"].count()))

for w in writers.values():
    w.wait_writes(200)
backup("inc")
q.wait_event("BACKUP_GROUP_COMPLETED", success=True)
check()

for w in writers.values():
    w.stop()
q.close()
disk.stop()
print("ok")
