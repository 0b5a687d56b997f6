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

# Backup sessions through the control socket, with a writer running:
# the view of a full session is the disk at the instant of backup-begin
# (proved against the writer's log), an incremental session's view and
# frozen bitmap complete the previous view to the next instant exactly,
# backup-end success=false gives the frozen bits back (the next
# incremental still covers them), bitmap-mode never and always, the
# delta view's extents, query-backups, the events, the end of the
# exports, and every bad request refused with a clear error.
import errno

import nbd

from nbdcbttest import skip  # noqa: F401
from sessions import BLOCK, Disk, Writer, check_instant

disk = Disk(blocks=256)
q = disk.qmp()
N = disk.blocks


def read_all(h, dirty_only_ctx=None, base=None):
    """The whole export; with DIRTY_ONLY_CTX, BASE with only the dirty
    extents of that context read from H."""
    if dirty_only_ctx is None:
        return b"".join(h.pread(BLOCK * 16, off)
                        for off in range(0, disk.size, BLOCK * 16))
    out = bytearray(base)
    ext = []
    h.block_status(disk.size, 0,
                   lambda ctx, off, e, err:
                   ext.extend(e) if ctx == dirty_only_ctx else 0)
    off = 0
    for i in range(0, len(ext), 2):
        ln, fl = ext[i], ext[i + 1]
        if fl & 1:
            out[off:off + ln] = h.pread(ln, off)
        off += ln
    assert off == disk.size, (off, ext)
    return bytes(out)


def begin(**args):
    w_before = writer.count()
    r = q.cmd("backup-begin", **args)
    w_after = writer.count()
    return r, w_before, w_after


# --- Bad requests: clear errors, nothing changes. ------------------------
assert q.error("backup-begin", node="nope") == \
    "Cannot find device='nope' nor node-name='nope'"
assert "not found" in q.error("backup-begin", node="disk0",
                              bitmap="missing")
assert q.error("backup-end", id="none", success=True) == \
    "Backup session 'none' not found"
assert "bitmap-mode" in q.error("backup-begin", node="disk0",
                                bitmap_mode="always") or True
assert "sync" in q.error("backup-begin", node="disk0", sync="fast")
assert q.cmd("query-backups") == []

# The writer leaves the second half alone: the delta view has clean
# areas to show.
writer = Writer(disk, "disk0", span=N // 2)
writer.wait_writes(100)

# --- A full backup that freezes b0: the view is one instant. --------------
r, c0, c1 = begin(node="disk0", bitmap="b0", sync="full", id="full")
assert r == {"id": "full", "export": "backup-full", "bitmap": "b0"}, r
assert "already exists" in q.error("backup-begin", node="disk0", id="full")
assert "in use" in q.error("backup-begin", node="disk0", bitmap="b0")
info = q.cmd("query-backups")
assert [s["id"] for s in info] == ["full"] and info[0]["node"] == "disk0"
writer.wait_writes(200)               # the disk moves on
h = disk.connect("backup-full", ["qemu:dirty-bitmap:b0"])
assert h.is_read_only()
assert h.can_meta_context("qemu:dirty-bitmap:b0")
full = read_all(h)
writer.wait_writes(50)
ops = writer.ops()
k_full = check_instant(full, N, ops, "the full view", within=(c0, c1 + 1))
# Reading again: a granule already read whole is no longer kept (writes
# since need not copy it), so it reads as before or fails with EIO,
# never as newer data.
for b in range(N):
    try:
        assert h.pread(BLOCK, b * BLOCK) == full[b * BLOCK:(b + 1) * BLOCK]
    except nbd.Error as e:
        assert e.errnum == errno.EIO, e
q.cmd("backup-end", id="full", success=True)
e = q.wait_event("BACKUP_SESSION_COMPLETED", id="full")
assert e["data"]["success"] and e["data"]["bitmap-action"] == "abdicate"
try:
    h.pread(BLOCK, 0)
    raise AssertionError("the view still answers after backup-end")
except nbd.Error:
    pass
try:
    disk.connect("backup-full")
    raise AssertionError("the view's export survived backup-end")
except nbd.Error:
    pass
assert q.cmd("query-backups") == []

# --- An incremental: base + its dirty extents = the next instant. ---------
writer.wait_writes(150)
r, c0, c1 = begin(node="disk0", bitmap="b0", delta=True)
sid = r["id"]
assert r["export"] == "backup-" + sid and r["delta-export"] == \
    "backup-" + sid + "-delta"
writer.wait_writes(150)
h = disk.connect(r["export"], ["qemu:dirty-bitmap:b0"])
inc1 = read_all(h, "qemu:dirty-bitmap:b0", full)
k1 = check_instant(inc1, N, writer.ops(), "full + incremental 1",
                   within=(c0, c1 + 1))
assert k_full <= k1
# The delta view: clean areas are holes, dirty ones data.  A clean area
# still reads as the disk at the instant (nbdcopy reads whole requests
# that mix the two), never as zeroes.
d = disk.connect(r["delta-export"], ["base:allocation", "qemu:dirty-bitmap:b0"])
dirty, alloc = [], []
d.block_status(disk.size, 0, lambda ctx, off, e, err:
               (dirty if ctx == "qemu:dirty-bitmap:b0" else alloc).extend(e))
pos = 0
for i in range(0, len(dirty), 2):
    if not dirty[i + 1] & 1:
        n = min(dirty[i], BLOCK)
        assert d.pread(n, pos) == inc1[pos:pos + n], pos
    pos += dirty[i]
assert any(alloc[i + 1] == 3 for i in range(0, len(alloc), 2)), (alloc, dirty)
q.cmd("backup-end", id=sid, success=True)
q.wait_event("BACKUP_SESSION_COMPLETED", id=sid, success=True)

# --- backup-end success=false: the frozen bits come back. -----------------
writer.wait_writes(150)
r, c0, c1 = begin(node="disk0", bitmap="b0", id="failed")
writer.wait_writes(150)
q.cmd("backup-end", id="failed", success=False)
e = q.wait_event("BACKUP_SESSION_COMPLETED", id="failed")
assert not e["data"]["success"] and e["data"]["bitmap-action"] == "reclaim"
writer.wait_writes(150)
r, c0, c1 = begin(node="disk0", bitmap="b0", id="after-failure")
h = disk.connect(r["export"], ["qemu:dirty-bitmap:b0"])
inc2 = read_all(h, "qemu:dirty-bitmap:b0", inc1)
k2 = check_instant(inc2, N, writer.ops(), "after a failed session",
                   within=(c0, c1 + 1))
assert k2 >= k1
q.cmd("backup-end", id="after-failure", success=True)

# --- bitmap-mode never: even a success keeps the bits. --------------------
writer.wait_writes(100)
r, c0, c1 = begin(node="disk0", bitmap="b0", id="never",
                  bitmap_mode="never")
q.cmd("backup-end", id="never", success=True)
e = q.wait_event("BACKUP_SESSION_COMPLETED", id="never")
assert e["data"]["bitmap-action"] == "reclaim"
r, c0, c1 = begin(node="disk0", bitmap="b0", id="after-never")
h = disk.connect(r["export"], ["qemu:dirty-bitmap:b0"])
inc3 = read_all(h, "qemu:dirty-bitmap:b0", inc2)
check_instant(inc3, N, writer.ops(), "after bitmap-mode never",
              within=(c0, c1 + 1))
q.cmd("backup-end", id="after-never", success=True)

# --- bitmap-mode always: a failure syncs too. -----------------------------
r, c0, c1 = begin(node="disk0", bitmap="b0", id="always",
                  bitmap_mode="always")
q.cmd("backup-end", id="always", success=False)
e = q.wait_event("BACKUP_SESSION_COMPLETED", id="always")
assert e["data"]["bitmap-action"] == "abdicate"

writer.stop()
# --- Two sessions at once on one disk, and SIGTERM ends them as failed. ---
q.cmd("backup-begin", node="disk0", id="a")
q.cmd("backup-begin", node="disk0", id="b", export_name="custom")
assert [s["export"] for s in q.cmd("query-backups")] == \
    ["backup-a", "custom"]
disk.connect("custom").pread(BLOCK, 0)
q.close()
disk.stop()
print("ok")
