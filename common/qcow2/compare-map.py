#!/usr/bin/env python3
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
