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

# compare-map.py TOOL IMG: the library's block status (data, zero,
# allocation depth) must agree with qemu-img map --output=json.
import json
import subprocess
import sys

tool, img = sys.argv[1], sys.argv[2]
qemu = json.loads(subprocess.check_output(
    ["qemu-img", "map", "--output=json", img]))
ours = []
for line in subprocess.check_output([tool, "map", img], text=True).split("\n"):
    if line:
        off, ln, st, depth = map(int, line.split())
        ours.append((off, ln, st, depth))


def at(table, off, key):
    for e in table:
        if key(e)[0] <= off < key(e)[0] + key(e)[1]:
            return e
    raise Exception("offset %d not covered" % off)


points = set()
for e in qemu:
    points.add(e["start"])
for e in ours:
    points.add(e[0])
bad = 0
for p in sorted(points):
    q = at(qemu, p, lambda e: (e["start"], e["length"]))
    o = at(ours, p, lambda e: (e[0], e[1]))
    data = bool(o[2] & 1)
    zero = bool(o[2] & 2)
    # qemu-img map: depth 0 is the top layer; "present" false means
    # unallocated in the whole chain.
    qdepth = q["depth"] + 1 if q["present"] else 0
    if data != q["data"] or zero != q["zero"] or o[3] != qdepth:
        print("%s: at %d qemu %s, ours %s" % (img, p, q, o))
        bad += 1
sys.exit(1 if bad else 0)
