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

"""Client tools read the dirty map the same way from each server:

- nbdinfo --map=qemu:dirty-bitmap:b0 (libnbd, full requests);
- qemu-img map --output=json --image-opts driver=nbd,...,
  x-dirty-bitmap=qemu:dirty-bitmap:b0 (QEMU's NBD client, which always
  sends REQ_ONE and reads the bitmap as if it were base:allocation, so a
  dirty area shows as "data": false and a clean one as "data": true).

Both outputs must match the model of the workload, and each other when
both servers run.
"""

import json
import shutil
import subprocess
import sys

from interop import (SERVERS, SIZE, model, replay, requirements, start,
                     workload, connect, skip)

requirements()
for prog in ("nbdinfo", "qemu-img"):
    if shutil.which(prog) is None:
        skip(prog + " is not installed")

G = 65536
ops = workload(77, G)
expected = model(ops, G)
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


def nbdinfo_map(srv):
    out = subprocess.run(["nbdinfo", "--map=qemu:dirty-bitmap:b0", srv.uri],
                         check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split()
        rows.append((int(f[0]), int(f[1]), int(f[2]), " ".join(f[3:])))
    return rows


def qemu_img_map(srv):
    opts = ("driver=nbd,server.type=unix,server.path=%s,"
            "x-dirty-bitmap=qemu:dirty-bitmap:b0" % srv.sock)
    out = subprocess.run(["qemu-img", "map", "--output=json",
                          "--image-opts", opts],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


exp_nbdinfo = [(o, ln, fl, "dirty" if fl else "clean")
               for o, ln, fl in expected]
outputs = {}
for name in SERVERS:
    with start(name, G) as srv:
        h = connect(srv)
        replay(h, ops)
        h.shutdown()
        ni = nbdinfo_map(srv)
        if ni != exp_nbdinfo:
            fail("%s: nbdinfo --map:\n  got %r\n  exp %r"
                 % (name, ni, exp_nbdinfo))
        qi = qemu_img_map(srv)
        # Each qemu-img extent must lie inside one model extent and say
        # data = not dirty; together they cover the disk.
        pos = 0
        for e in qi:
            if e["start"] != pos:
                fail("%s: qemu-img map gap at %d: %r" % (name, pos, e))
                break
            inside = [m for m in expected
                      if m[0] <= e["start"]
                      and e["start"] + e["length"] <= m[0] + m[1]]
            if not inside or e["data"] != (inside[0][2] == 0):
                fail("%s: qemu-img map extent %r does not match the "
                     "model" % (name, e))
            pos += e["length"]
        if pos != SIZE:
            fail("%s: qemu-img map covers %d of %d bytes" % (name, pos, SIZE))
        outputs[name] = (ni, qi)
    print("%s: nbdinfo %d extents, qemu-img %d extents"
          % (name, len(ni), len(qi)))

if len(outputs) == 2:
    if outputs["qemu-nbd"][0] != outputs["nbdcbt"][0]:
        fail("nbdinfo --map outputs differ")
    # "offset" names the server's own image: compare the rest.
    strip = [[{k: v for k, v in e.items() if k != "offset"} for e in o[1]]
             for o in (outputs["qemu-nbd"], outputs["nbdcbt"])]
    if strip[0] != strip[1]:
        fail("qemu-img map outputs differ:\n  qemu-nbd %r\n  nbdcbt %r"
             % (strip[0], strip[1]))

sys.exit(1 if failures else 0)
