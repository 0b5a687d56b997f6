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

"""The same sequence of bitmap operations through nbdcbt-img and through
qemu-img on twin images leaves identical qemu-img info bitmap lists and
identical dirty maps (read by qemu-nbd -B, and by nbdcbt-img map), and
the same errors."""

import json
import os
import shutil
import subprocess
import sys

from nbdcbttest import Server, extents, require, scratch_dir

require("qemu-img")
require("qemu-io")
require("qemu-nbd")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qcow2corpus  # noqa: E402

d = scratch_dir()
A = os.path.join(d, "qemu.qcow2")      # driven by qemu-img
B = os.path.join(d, "nbdcbt.qcow2")    # driven by nbdcbt-img
SRC = os.path.join(d, "source.qcow2")  # --merge -b source
SIZE = 8 * 1024 * 1024
failures = []


def run(argv, check=True):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(argv), p.stderr))
    return p


def both(args, expect_ok=True):
    """Run a `bitmap` command on both twins; exit codes and messages must
    match (with the program name swapped)."""
    pa = run(["qemu-img", "bitmap"] + [A if a == "IMG" else a for a in args],
             check=False)
    pb = run(["nbdcbt-img", "bitmap"] + [B if a == "IMG" else a for a in args],
             check=False)
    ea = pa.stderr.strip().replace("qemu-img:", "X:").replace(A, "IMG")
    eb = pb.stderr.strip().replace("nbdcbt-img:", "X:").replace(B, "IMG")
    # qemu-img adds its node name in some messages; compare the first line.
    ok = (pa.returncode == 0) == (pb.returncode == 0)
    if ok and pa.returncode != 0:
        ok = ea.split("\n")[0] == eb.split("\n")[0]
    if not ok or (pa.returncode == 0) != expect_ok:
        failures.append(" ".join(args))
        print("FAIL bitmap %s:\n  qemu-img   %d %s\n  nbdcbt-img %d %s"
              % (" ".join(args), pa.returncode, ea, pb.returncode, eb))
    else:
        print("ok   bitmap %s %s" % (" ".join(args), ea if ea else ""))


def write(cmd):
    for img in (A, B):
        run(["qemu-io", "-f", "qcow2", "-c", cmd, img])


def bitmaps(img):
    info = json.loads(run(["qemu-img", "info", "--output=json", img]).stdout)
    return info["format-specific"]["data"].get("bitmaps", [])


def qemu_map(img, name):
    with Server.qemu_nbd(["-r", "-f", "qcow2", "-B", name, img]) as srv:
        h = srv.connect(["qemu:dirty-bitmap:" + name])
        m = extents(h, "qemu:dirty-bitmap:" + name)
        h.shutdown()
    return [list(e) for e in m]


def our_map(img, name):
    out = run(["nbdcbt-img", "map", "--output=json", "--bitmap", name,
               img]).stdout
    return [[e["offset"], e["length"], e["type"]] for e in json.loads(out)]


def by_name(bm):
    return bm["name"]


def compare(step):
    la, lb = bitmaps(A), bitmaps(B)
    if la != lb and sorted(la, key=by_name) == sorted(lb, key=by_name):
        # Same bitmaps in another directory order: a difference too
        # (qemu-img info lists them in directory order).
        failures.append(step)
        print("FAIL %s: same bitmaps, directory order differs\n  %s\n  %s"
              % (step, [b["name"] for b in la], [b["name"] for b in lb]))
        return
    if la != lb:
        failures.append(step)
        print("FAIL %s: qemu-img info bitmaps differ\n  %s\n  %s"
              % (step, la, lb))
        return
    for bm in la:
        if "in-use" in bm["flags"]:
            continue
        name = bm["name"]
        ma, mb = qemu_map(A, name), qemu_map(B, name)
        oa, ob = our_map(A, name), our_map(B, name)
        if not (ma == mb == oa == ob):
            failures.append(step)
            print("FAIL %s: maps of %s differ\n  qemu-nbd A %s\n  qemu-nbd B %s"
                  "\n  nbdcbt-img map A %s\n  nbdcbt-img map B %s"
                  % (step, name, ma, mb, oa, ob))
    print("ok   %s: %d bitmaps identical" % (step, len(la)))


for img in (A, B, SRC):
    run(["qemu-img", "create", "-q", "-f", "qcow2", img, str(SIZE)])
run(["qemu-img", "bitmap", "--add", "-g", "4k", SRC, "s0"])
run(["qemu-io", "-f", "qcow2", "-c", "write 5M 12k", SRC])

both(["--add", "IMG", "b0"])
both(["--add", "-g", "128k", "IMG", "b1"])
both(["--add", "-g", "512", "IMG", "b2"])
write("write 0 64k")
write("write 1M 100k")
compare("add and write")

both(["--disable", "IMG", "b1"])
write("write 2M 64k")
write("write -z 7M 512")
compare("disable")

both(["--merge", "b0", "IMG", "b1"])
both(["--merge", "b2", "IMG", "b1"])     # different granularity
compare("merge")

both(["--clear", "IMG", "b0"])
write("write 3M 4k")
both(["--enable", "--clear", "IMG", "b1"])
both(["--remove", "IMG", "b2"])
both(["--add", "--disable", "-g", "64k", "IMG", "b2"])
write("write 4M 1k")
compare("clear, several operations in order")

both(["--merge", "s0", "-b", SRC, "-F", "qcow2", "IMG", "b2"])
both(["--clear", "--merge", "s0", "-b", SRC, "IMG", "b0"])
compare("merge from another image")

# Errors: same failure, same message.
both(["--add", "IMG", "b0"], expect_ok=False)
both(["--add", "IMG", ""], expect_ok=False)
both(["--remove", "IMG", "nope"], expect_ok=False)
both(["--clear", "IMG", "nope"], expect_ok=False)
both(["--merge", "nope", "IMG", "b0"], expect_ok=False)
both(["--add", "-g", "1000", "IMG", "zz"], expect_ok=False)
both(["-g", "64k", "--enable", "IMG", "b0"], expect_ok=False)
both(["IMG", "b0"], expect_ok=False)
both(["--add", "IMG"], expect_ok=False)
both(["--enable", "-F", "qcow2", "IMG", "b0"], expect_ok=False)
both(["--enable", "-b", SRC, "IMG", "b0"], expect_ok=False)
# A failure stops the sequence; what was done before it stays done.
both(["--disable", "--remove", "--remove", "IMG", "b0"], expect_ok=False)
compare("errors")

# An inconsistent (in_use) bitmap can only be removed.
for img in (A, B):
    run(["qemu-img", "bitmap", "--add", img, "bad"])
    # Set in_use in the directory entry of "bad" (flags at entry + 12).
    with open(img, "r+b") as f:
        data = f.read()
    im = qcow2corpus.Image(img)
    for e in im.entries:
        name_at = e["at"] + 24
        if im.data[name_at:name_at + 3] == b"bad":
            im.put("I", e["at"] + 12, e["flags"] | 1)
    im.save(img)
compare("in-use bitmap listed")
both(["--enable", "IMG", "bad"], expect_ok=False)
both(["--clear", "IMG", "bad"], expect_ok=False)
both(["--merge", "bad", "IMG", "b1"], expect_ok=False)
both(["--remove", "IMG", "bad"])
compare("in-use bitmap removed")

for img in (A, B):
    p = run(["qemu-img", "check", img], check=False)
    if p.returncode != 0:
        failures.append("check " + img)
        print("FAIL qemu-img check %s: %s" % (img, p.stdout + p.stderr))

if failures:
    print("%d failures" % len(failures))
    sys.exit(1)
