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

"""Helpers for the interop suite (tests/interop): the same tests against
qemu-nbd and nbdcbt.

The server is chosen with INTEROP_SERVER:
  nbdcbt    nbdcbt --filter=dirty memory size=SIZE bitmap=b0:G
  qemu-nbd  qemu-nbd -f qcow2 -B b0 --discard=unmap on a qcow2 image with
            a recording bitmap b0 of granularity G
  both      (default, what `make check` runs) every test runs against both
            and the answers must be equal, besides matching the model.

Every test also checks each server against a model of the bitmap built
from the workload in Python, so a single-server run is a real test too.
"""

import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import nbd                      # noqa: E402
import nbdcbttest               # noqa: E402
from nbdcbttest import Server, scratch_dir, skip, require  # noqa: E402,F401

CONTEXT = "qemu:dirty-bitmap:b0"

MODE = os.environ.get("INTEROP_SERVER", "both")
if MODE not in ("nbdcbt", "qemu-nbd", "both"):
    print("INTEROP_SERVER must be nbdcbt, qemu-nbd or both, not %r" % MODE)
    sys.exit(1)
SERVERS = ["qemu-nbd", "nbdcbt"] if MODE == "both" else [MODE]

# INTEROP_SEED varies the random workloads (the default is what make check
# runs, so failures reproduce).
SEED = int(os.environ.get("INTEROP_SEED", "0"))

GRANULARITIES = [512, 4096, 65536, 1 << 20]
# qcow2 sizes are multiples of 512, so this is the closest to "no multiple
# of the granularity" both servers can do: 3 MiB + 21.5 KiB is no multiple
# of 4K, 64K or 1M.
SIZE = 3 * (1 << 20) + 5 * 4096 + 1536


def requirements():
    """Skip unless the chosen servers can run.  In "both" mode a missing
    qemu-nbd leaves nbdcbt tested alone against the model."""
    if "qemu-nbd" in SERVERS and (shutil.which("qemu-nbd") is None
                                  or shutil.which("qemu-img") is None):
        if MODE == "both":
            print("qemu-nbd or qemu-img missing: testing nbdcbt only")
            SERVERS.remove("qemu-nbd")
        else:
            skip("qemu-nbd or qemu-img is not installed")
    if "nbdcbt" in SERVERS and not os.access(nbdcbttest.NBDCBT, os.X_OK):
        skip("nbdcbt is not built: " + nbdcbttest.NBDCBT)


def start(name, granularity, size=SIZE, bitmaps=("b0",)):
    """Start NAME serving a SIZE-byte disk with recording bitmaps BITMAPS
    of GRANULARITY (all clean)."""
    if name == "qemu-nbd":
        img = os.path.join(scratch_dir(), "img-%d.qcow2" % random.random())
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img,
                        str(size)], check=True)
        args = ["-t", "-f", "qcow2", "--discard=unmap"]
        for b in bitmaps:
            subprocess.run(["qemu-img", "bitmap", "--add", "-g",
                            str(granularity), img, b], check=True)
            args += ["-B", b]
        return Server.qemu_nbd(args + [img])
    args = ["--filter=dirty", "memory", "size=%d" % size]
    args += ["bitmap=%s:%d" % (b, granularity) for b in bitmaps]
    return Server.nbdcbt(args)


def connect(srv, contexts=(CONTEXT,)):
    return srv.connect(meta_contexts=contexts)


def workload(seed, granularity=4096, size=SIZE):
    """A list of (op, offset, length): writes, zeroes and trims of random,
    unaligned sizes, some tiny, some spanning many granules, some touching
    the end of the disk."""
    rnd = random.Random(seed)
    ops = []
    # Fewer and shorter requests for coarse granularities, so that some
    # granules stay clean.
    ngran = size // granularity
    n = max(3, min(60, ngran // 3))
    cap = max(600, min(700000, size // n // 2))
    for _ in range(n):
        op = rnd.choice(["write", "write", "zero", "trim"])
        kind = rnd.random()
        if kind < 0.3:
            length = rnd.randint(1, 600)
        elif kind < 0.8:
            length = rnd.randint(1, min(80000, cap))
        else:
            length = rnd.randint(1, cap)
        if rnd.random() < 0.1:
            offset = size - length      # reaches the end
        else:
            offset = rnd.randint(0, size - length)
        ops.append((op, offset, length))
    return ops


def replay(h, ops):
    for op, offset, length in ops:
        if op == "write":
            h.pwrite(bytes([(offset + length) & 0xff or 1]) * length, offset)
        elif op == "zero":
            h.zero(length, offset)
        else:
            h.trim(length, offset)
    h.flush()


def model(ops, granularity, size=SIZE):
    """The expected bitmap: merged [(offset, length, flags)] over the
    whole disk."""
    dirty = set()
    for _, offset, length in ops:
        for g in range(offset // granularity,
                       (offset + length - 1) // granularity + 1):
            dirty.add(g)
    out = []
    ngran = (size + granularity - 1) // granularity
    for g in range(ngran):
        start = g * granularity
        ln = min(granularity, size - start)
        fl = 1 if g in dirty else 0
        if out and out[-1][2] == fl:
            out[-1] = (out[-1][0], out[-1][1] + ln, fl)
        else:
            out.append((start, ln, fl))
    return out


def model_status(expected, offset):
    """Flags of the byte at OFFSET and the end of its extent."""
    for start, ln, fl in expected:
        if start <= offset < start + ln:
            return fl, start + ln
    raise ValueError("offset %d past the end" % offset)


def block_status_raw(h, count, offset, flags=0, context=CONTEXT):
    """One block status request: [(length, flags)] of CONTEXT as sent, and
    the number of chunks per context."""
    got = {}
    chunks = {}

    def cb(meta, off, ents, err):
        chunks[meta] = chunks.get(meta, 0) + 1
        got.setdefault(meta, []).extend(
            (ents[i], ents[i + 1]) for i in range(0, len(ents), 2))
        return 0
    h.block_status(count, offset, cb, flags)
    return got.get(context, []), chunks


def expected_answer(expected, count, offset, req_one):
    """The answer qemu-nbd gives, from the model: extents alternate between
    clean and dirty, each boundary is the model's (a granule multiple or
    the export end) or the request's end, and the extents cover exactly
    the request; REQ_ONE gives only the first."""
    out = []
    pos, end = offset, offset + count
    while pos < end:
        fl, exp_end = model_status(expected, pos)
        nxt = min(exp_end, end)
        out.append((nxt - pos, fl))
        if req_one:
            break
        pos = nxt
    return out
