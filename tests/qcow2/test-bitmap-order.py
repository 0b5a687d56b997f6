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

"""The order of the bitmap directory after nbdcbt-img bitmap edits is
QEMU's: bitmaps already on disk keep their places (inconsistent ones
too), a new one goes at the end.  Twin images, one edited by qemu-img,
one by nbdcbt-img; qemu-img info must list them in the same order
(qcow2_bitmaps_store keeps the order of the old directory for the
entries it stores and keeps, and appends the new ones)."""

import json
import os
import subprocess
import sys

from nbdcbttest import require, scratch_dir

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qcow2corpus  # noqa: E402

require("qemu-img")
require("qemu-io")
d = scratch_dir()
TOOL = os.path.join(os.environ["top_builddir"], "tools", "img", "nbdcbt-img")
A, B = os.path.join(d, "a.qcow2"), os.path.join(d, "b.qcow2")
failures = []


def names(img):
    out = subprocess.run(["qemu-img", "info", "--output=json", img],
                         check=True, stdout=subprocess.PIPE).stdout
    return [b["name"] for b in
            json.loads(out)["format-specific"]["data"].get("bitmaps", [])]


def both(*args):
    for tool, img in (("qemu-img", A), (TOOL, B)):
        subprocess.run([tool, "bitmap"] + [img if a == "IMG" else a
                                           for a in args], check=True)


def compare(step):
    a, b = names(A), names(B)
    if a != b:
        failures.append(step)
        print("FAIL %s:\n  qemu-img   %s\n  nbdcbt-img %s" % (step, a, b))
    else:
        print("ok   %s: %s" % (step, a))


for img in (A, B):
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "8M"],
                   check=True)
for n in ("b0", "b1", "b2"):
    both("--add", "IMG", n)
compare("three adds")
both("--remove", "IMG", "b1")
both("--add", "IMG", "b1")
compare("remove and add again")
both("--disable", "--clear", "IMG", "b2")
compare("disable and clear keep the place")
# An inconsistent bitmap keeps its place too.
for img in (A, B):
    im = qcow2corpus.Image(img)
    for e in im.entries:
        if im.data[e["at"] + 24:e["at"] + 26] == b"b0":
            im.put("I", e["at"] + 12, e["flags"] | 1)
    im.save(img)
both("--enable", "IMG", "b2")
compare("an in-use bitmap keeps its place")
sys.exit(1 if failures else 0)
