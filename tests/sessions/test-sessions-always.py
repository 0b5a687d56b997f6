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

# bitmap-mode=always on a failed session, as QEMU: the bitmap is cleared
# of exactly what the backup copied, so what it did not copy stays dirty.
# A backup client (a process of its own, holding the control connection
# with end-on-disconnect) copies half of an incremental session's dirty
# granules into a mirror, then is killed with SIGKILL; the session ends
# failed.  The bitmap must then hold the granules it did not copy (and
# not those it did, unless written since), and the next incremental
# applied to the mirror restores the disk exactly -- with a writer
# running throughout.  The writes the client does not copy include some
# that no later write covers, so a lost granule shows.
import atexit
import json
import os
import signal
import subprocess
import sys
import time

from sessions import BLOCK, Disk, Writer, _kill, check_instant

disk = Disk(blocks=256)
q = disk.qmp()
N = disk.blocks
CTX = "qemu:dirty-bitmap:b0"
mirror = os.path.join(disk.dir, "mirror.raw")


def dirty_extents(h):
    ext = []
    h.block_status(disk.size, 0,
                   lambda ctx, off, e, err: ext.extend(e) if ctx == CTX
                   else 0)
    out, off = [], 0
    for i in range(0, len(ext), 2):
        if ext[i + 1] & 1:
            out.append((off, ext[i]))
        off += ext[i]
    assert off == disk.size
    return out


def incremental(**args):
    """An on-success incremental session applied to the mirror; returns
    (writer count before, after) around backup-begin."""
    c0 = writer.count()
    r = q.cmd("backup-begin", node="disk0", bitmap="b0", **args)
    c1 = writer.count()
    h = disk.connect(r["export"], [CTX])
    with open(mirror, "r+b") as f:
        for off, ln in dirty_extents(h):
            f.seek(off)
            f.write(h.pread(ln, off))
    h.shutdown()
    q.cmd("backup-end", id=r["id"], success=True)
    e = q.wait_event("BACKUP_SESSION_COMPLETED", id=r["id"])
    assert e["data"]["success"], e
    return c0, c1


# The first writer covers the whole disk; the second leaves the last
# quarter alone, so what the first wrote there is written no more.
writer = Writer(disk, "disk0", seed=3)

# A full backup that freezes b0 starts the chain.
r = q.cmd("backup-begin", node="disk0", bitmap="b0", sync="full",
          id="full")
h = disk.connect("backup-full")
with open(mirror, "wb") as f:
    for off in range(0, disk.size, BLOCK * 16):
        f.write(h.pread(BLOCK * 16, off))
h.shutdown()
q.cmd("backup-end", id="full", success=True)
q.wait_event("BACKUP_SESSION_COMPLETED", id="full")

writer.wait_writes(300)
hist = writer.stop()
assert any(b >= N * 3 // 4 for _, _, b in hist), "no write in the last quarter"
writer = Writer(disk, "disk0", seed=4, span=N * 3 // 4,
                first_seq=hist[-1][0] + 1, history=hist)
writer.wait_writes(100)

# --- The client: always, copies half, killed. ---------------------------
CLIENT = r'''
import json, os, socket, sys, time
import nbd
ctl, sock, mirror, size, half_out = sys.argv[1:6]
size = int(size)
s = socket.socket(socket.AF_UNIX)
s.connect(ctl)
f = s.makefile("rw")
def cmd(name, **a):
    f.write(json.dumps({"execute": name, "arguments": a}) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" not in r:
            return r
json.loads(f.readline())
f.write('{"execute": "qmp_capabilities"}\n'); f.flush(); f.readline()
r = cmd("backup-begin", **{"node": "disk0", "bitmap": "b0", "id": "always",
        "bitmap-mode": "always", "end-on-disconnect": True})["return"]
h = nbd.NBD()
h.add_meta_context("qemu:dirty-bitmap:b0")
h.set_export_name(r["export"])
h.connect_unix(sock)
ext = []
h.block_status(size, 0, lambda c, o, e, err: ext.extend(e)
               if c == "qemu:dirty-bitmap:b0" else 0)
blocks, off = [], 0
for i in range(0, len(ext), 2):
    if ext[i + 1] & 1:
        blocks += range(off, off + ext[i], 65536)
    off += ext[i]
copied = blocks[:len(blocks) // 2]
with open(mirror, "r+b") as m:
    for b in copied:
        m.seek(b)
        m.write(h.pread(65536, b))
    m.flush()
    os.fsync(m.fileno())
with open(half_out + ".tmp", "w") as o:
    json.dump({"dirty": blocks, "copied": copied}, o)
os.rename(half_out + ".tmp", half_out)
time.sleep(3600)
'''
half = os.path.join(disk.dir, "half.json")
c0 = writer.count()
client = subprocess.Popen([sys.executable, "-c", CLIENT, disk.ctl,
                           disk.sock, mirror, str(disk.size), half])
atexit.register(_kill, client)
end = time.time() + 60
while not os.path.exists(half):
    assert client.poll() is None, "the client failed"
    assert time.time() < end, "the client did not copy"
    time.sleep(0.05)
client.send_signal(signal.SIGKILL)
client.wait()

with open(half) as f:
    done = json.load(f)
dirty, copied = done["dirty"], done["copied"]
uncopied = sorted(set(dirty) - set(copied))
assert copied and uncopied
assert any(b >= (N * 3 // 4) * BLOCK for b in uncopied), \
    "the uncopied half has nothing in the last quarter"

e = q.wait_event("BACKUP_SESSION_COMPLETED", id="always")
d = e["data"]
assert not d["success"] and d["bitmap-action"] == "abdicate", d
assert q.cmd("query-backups") == []

# The bitmap now: every uncopied granule dirty; copied ones that nobody
# wrote since (the last quarter: no writer there any more) clean.
r = q.cmd("backup-begin", node="disk0", bitmap="b0", id="peek",
          bitmap_mode="never")
h = disk.connect(r["export"], [CTX])
now = set()
for off, ln in dirty_extents(h):
    now.update(range(off, off + ln, BLOCK))
h.shutdown()
q.cmd("backup-end", id="peek", success=False)
q.wait_event("BACKUP_SESSION_COMPLETED", id="peek")
missing = [b // BLOCK for b in uncopied if b not in now]
quiet = [b for b in copied if b >= (N * 3 // 4) * BLOCK]
assert all(b not in now for b in quiet), \
    "copied granules still dirty: the bitmap was reclaimed, not synced"

# --- The next incremental onto the mirror: the disk at its instant. ------
writer.wait_writes(100)
c0, c1 = incremental()
with open(mirror, "rb") as f:
    check_instant(f.read(), N, writer.ops(), "mirror after always",
                  within=(c0, c1 + 1))
assert not missing, "uncopied granules lost from b0: %s" % missing

# And once the writer stopped, one more: the mirror equals the disk.
ops = writer.stop()
incremental()
h = disk.connect("disk0")
live = b"".join(h.pread(BLOCK * 16, off)
                for off in range(0, disk.size, BLOCK * 16))
with open(mirror, "rb") as f:
    assert f.read() == live, "the mirror differs from the disk"
# The event said how much stayed dirty: exactly what was not copied.
assert d["uncopied"] == len(uncopied) * BLOCK, (d, len(uncopied))
q.close()
disk.stop()
print("ok")
