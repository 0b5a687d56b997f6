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

"""The 65535-bitmap limit (QCOW2_MAX_BITMAPS).  Adding 65535 bitmaps one
by one would take long (each add is a complete store), so the image is
written directly: a valid v3 image with 512-byte clusters, 16-bit
refcounts and 65535 empty bitmaps, each with its own one-cluster table.
nbdcbt-img check must find it clean and nbdcbt-img refuse a 65536th
bitmap with QEMU's message, leaving the file alone; after removing one,
adding one works again.  qemu-img needs minutes to open 65535 bitmaps, so
it checks a 5000-bitmap image made the same way instead (and the edits
nbdcbt-img makes to it)."""

import json
import os
import struct

from nbdcbttest import check, finish, require, run, scratch_dir, sha256_file

require("qemu-img")

TOOL = os.path.join(os.environ["top_builddir"], "tools", "img", "nbdcbt-img")
MAX = 65535
CB = 9
CS = 1 << CB
SIZE = 1 << 20                  # 1 MiB: one table cluster at 64 KiB
d = scratch_dir()




def clusters(nbytes):
    return (nbytes + CS - 1) // CS


def write_image(path, n):
    names = [("b%05d" % i).encode() for i in range(n)]
    entry = 24 + 8                  # 24 + name of 6 bytes, rounded to 8
    dir_size = n * entry
    dir_clusters = clusters(dir_size)
    rb_entries = CS // 2            # 16-bit refcounts
    # Clusters: header, L1, reftable (R), refcount blocks (B), directory,
    # tables.  Find R and B that cover everything, themselves included.
    r = b = 1
    while True:
        total = 2 + r + b + dir_clusters + n
        nb, nr = -(-total // rb_entries), clusters(-(-total // rb_entries) * 8)
        if (nb, nr) == (b, r):
            break
        b, r = nb, nr
    l1_off, rt_off = CS, 2 * CS
    rb_off = rt_off + r * CS
    dir_off = rb_off + b * CS
    tables_off = dir_off + dir_clusters * CS
    with open(path, "wb") as f:
        f.truncate(total * CS)
        hdr = struct.pack(">IIQIIQIIQQIIQQQQII", 0x514649fb, 3, 0, 0, CB,
                          SIZE, 0, SIZE // (CS // 8 * CS), l1_off, rt_off,
                          r, 0, 0, 0, 0, 1, 4, 104)
        ext = struct.pack(">IIIIQQ", 0x23852875, 24, n, 0, dir_size, dir_off)
        f.seek(0)
        f.write(hdr + ext + struct.pack(">II", 0, 0))
        f.seek(rt_off)
        f.write(b"".join(struct.pack(">Q", rb_off + i * CS)
                         for i in range(b)))
        f.seek(rb_off)
        f.write(struct.pack(">H", 1) * total)
        f.seek(dir_off)
        f.write(b"".join(struct.pack(">QIIBBHI", tables_off + i * CS, 1, 2,
                                     1, 16, len(nm), 0) + nm + b"\0\0"
                         for i, nm in enumerate(names)))






def names_by_qemu(img):
    p = run(["qemu-img", "info", "--output=json", img])
    if p.returncode != 0:
        return p.stderr
    return [b["name"] for b in
            json.loads(p.stdout)["format-specific"]["data"]["bitmaps"]]


# 1. 5000 bitmaps: small enough for qemu-img (which needs minutes for
# 65535: it looks names up linearly), large enough that the new bitmap
# directory (160 KiB) spans more clusters than a refcount block covers
# (256 of 512 bytes), past the end of the image: the allocator must place
# the new refcount blocks outside the run.
mid = os.path.join(d, "mid.qcow2")
write_image(mid, 5000)
p = run(["qemu-img", "check", mid])
check(p.returncode == 0, "a crafted image with 5000 bitmaps is clean",
      p.stdout + p.stderr)
p = run([TOOL, "bitmap", "--remove", mid, "b00003"])
check(p.returncode == 0, "5000: removing one works", p.stderr)
for nm in ("new1", "new2"):
    p = run([TOOL, "bitmap", "--add", mid, nm])
    check(p.returncode == 0, "5000: adding %s works" % nm, p.stderr)
p = run(["qemu-img", "check", mid])
check(p.returncode == 0, "5000: qemu-img check clean after the edits",
      p.stdout + p.stderr)
expected = ["b%05d" % i for i in range(5000) if i != 3] + ["new1", "new2"]
check(names_by_qemu(mid) == expected,
      "5000: qemu-img info lists them in QEMU's order")

# 2. The limit itself, with nbdcbt-img only.  QEMU 7.2's message for a
# 65536th (qcow2_co_can_store_new_dirty_bitmap) is "Maximum number of
# persistent bitmaps is already reached".
img = os.path.join(d, "many.qcow2")
write_image(img, MAX)
p = run([TOOL, "check", img])
check(p.returncode == 0, "the crafted image with %d bitmaps is clean" % MAX,
      p.stdout + p.stderr)
p = run([TOOL, "info", "--output=json", img])
n = len(json.loads(p.stdout)["format-specific"]["data"]["bitmaps"]) \
    if p.returncode == 0 else -1
check(n == MAX, "nbdcbt-img info lists %d bitmaps" % MAX, p.stderr)

before = sha256_file(img)
p = run([TOOL, "bitmap", "--add", img, "one-more"])
check(p.returncode == 1 and "Maximum number of persistent bitmaps is "
      "already reached" in p.stderr,
      "nbdcbt-img refuses the %dth with QEMU's message" % (MAX + 1), p.stderr)
check(sha256_file(img) == before, "the image was left alone")

p = run([TOOL, "bitmap", "--remove", img, "b00007"])
check(p.returncode == 0, "removing one works", p.stderr)
p = run([TOOL, "bitmap", "--add", img, "one-more"])
check(p.returncode == 0, "then adding one works again", p.stderr)
p = run([TOOL, "check", img])
check(p.returncode == 0, "nbdcbt-img check: clean", p.stdout + p.stderr)
p = run([TOOL, "info", "--output=json", img])
names = [b["name"] for b in
         json.loads(p.stdout)["format-specific"]["data"]["bitmaps"]] \
    if p.returncode == 0 else []
check(len(names) == MAX and names[-1] == "one-more" and
      "b00007" not in names, "the new one last, %d in all" % MAX,
      p.stderr[-500:])

finish()
