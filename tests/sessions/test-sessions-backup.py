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

# nbdcbt-backup --control on a disk that a writer keeps writing (a qcow2
# image whose bitmap b0 persists): every restore point of the chain is
# the disk at the instant its session began (proved against the writer's
# log, and within the run of the backup that took it), the next
# incremental restores exactly, and no failure loses a write: the backup
# client killed with SIGKILL, its data connection dropped, the server
# stopped in the middle of a backup (SIGTERM, then started again) --
# after each, the following incremental still restores the disk exactly.
import atexit
import os
import signal
import subprocess
import sys
import time

from nbdcbttest import require
from sessions import Disk, Writer, _kill, check_instant

require("qemu-img")
disk = Disk(blocks=256, fmt="qcow2")
q = disk.qmp()
chain = os.path.join(disk.dir, "chain")
restored = os.path.join(disk.dir, "restored.raw")
proxy = os.path.join(os.environ["top_srcdir"], "tests", "backup",
                     "nbd-proxy.py")
writer = Writer(disk, "disk0")
writer.wait_writes(200)
points = []          # (index, lowest K, highest K) of each restore point


def backup(kind, uri=None, expect_ok=True, **kw):
    c0 = writer.count()
    p = subprocess.run(["nbdcbt-backup", kind, uri or disk.uri("disk0"),
                        "-o", chain, "--bitmap", "b0", "-q",
                        "--control", disk.ctl, "--node", "disk0"], **kw)
    c1 = writer.count()
    if expect_ok:
        assert p.returncode == 0, "nbdcbt-backup %s failed" % kind
        points.append((len(points), c0, c1))
    return p


def check_chain():
    """Every restore point is the disk at an instant within its run."""
    ops = writer.ops()
    last = 0
    for index, c0, c1 in points:
        subprocess.run(["nbdcbt-backup", "restore", chain, "--until",
                        str(index), "-o", restored, "-q"], check=True)
        with open(restored, "rb") as f:
            data = f.read()
        k = check_instant(data, disk.blocks, ops, "restore point %d" % index,
                          within=(c0, c1 + 1))
        assert k >= last, (index, last, k)
        last = k


def no_session_left():
    end = time.time() + 30
    while q.cmd("query-backups"):
        assert time.time() < end, "a session outlived its client"
        time.sleep(0.05)


backup("full")
writer.wait_writes(300)
backup("inc")
writer.wait_writes(300)
backup("inc")
check_chain()

def through_proxy(mode, **kw):
    """nbdcbt-backup inc through a proxy that stalls or drops its data
    connection after 256 KiB.  Returns (backup, proxy) once that point
    was reached."""
    tag = str(time.monotonic_ns())
    psock = os.path.join(disk.dir, "proxy-%s.sock" % tag)
    marker = os.path.join(disk.dir, "proxy-%s.marker" % tag)
    ppid = os.path.join(disk.dir, "proxy-%s.pid" % tag)
    pp = subprocess.Popen([sys.executable, proxy, psock, disk.sock,
                           str(256 * 1024), mode, marker, ppid])
    atexit.register(_kill, pp)
    end = time.time() + 30
    while not os.path.exists(ppid):
        assert time.time() < end
        time.sleep(0.02)
    p = subprocess.Popen(["nbdcbt-backup", "inc",
                          "nbd+unix:///disk0?socket=" + psock, "-o", chain,
                          "--bitmap", "b0", "-q", "--control", disk.ctl,
                          "--node", "disk0"], **kw)
    atexit.register(_kill, p)
    end = time.time() + 60
    while not os.path.exists(marker):
        assert time.time() < end and p.poll() is None, "no copy happened"
        time.sleep(0.02)
    return p, pp


def failed_and_reclaimed():
    no_session_left()
    e = q.wait_event("BACKUP_SESSION_COMPLETED", success=False)
    assert e["data"]["bitmap-action"] == "reclaim", e


# The client killed (SIGKILL) in the middle of its copy: the server ends
# its session as failed when the control connection closes; the bitmap
# keeps the frozen bits.
writer.wait_writes(300)
p, pp = through_proxy("stall")
assert q.cmd("query-backups")
p.send_signal(signal.SIGKILL)
p.wait()
pp.kill()
pp.wait()
failed_and_reclaimed()
writer.wait_writes(300)
backup("inc")
check_chain()

# Its data connection dropped in the middle of the copy: the backup
# fails and ends its session with failure.
writer.wait_writes(300)
p, pp = through_proxy("drop", stderr=subprocess.PIPE)
err = p.communicate()[1]
pp.kill()
pp.wait()
assert p.returncode != 0, err
failed_and_reclaimed()
writer.wait_writes(300)
backup("inc")
check_chain()

# The server stopped (SIGTERM) in the middle of a backup: the session
# ends as failed and b0, stored in the image, keeps the frozen bits.
writer.wait_writes(300)
p, pp = through_proxy("stall", stderr=subprocess.DEVNULL)
ops_before_stop = writer.stop()
q.close()
disk.proc.send_signal(signal.SIGTERM)
# The stalled proxy reads nothing more from the server: let it go, or
# the server's reply to it never leaves (and the server cannot stop).
time.sleep(0.5)
pp.kill()
pp.wait()
assert disk.proc.wait(30) == 0
assert p.wait() != 0
disk.start()
q = disk.qmp()
writer = Writer(disk, "disk0", seed=2, first_seq=ops_before_stop[-1][0] + 1,
                history=ops_before_stop)
writer.wait_writes(300)
backup("inc")
check_chain()

writer.stop()
q.close()
disk.stop()
print("ok: %d restore points, each one instant" % len(points))
