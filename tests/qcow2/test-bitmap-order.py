#!/usr/bin/env python3
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
