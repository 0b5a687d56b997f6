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

"""hbitmap_sha256 and hbitmap_count against QEMU.

For several disk sizes, qemu-storage-daemon serves a raw file over NBD with
dirty bitmaps of several granularities on it.  We write ranges through NBD,
then ask QMP for x-debug-block-dirty-bitmap-sha256 and for each bitmap's
dirty count (query-named-block-nodes), and compare them with what the
hbitmap-sha256 helper computes from the same ranges with hbitmap_set.
"""

import json
import os
import random
import socket
import subprocess
import sys
import time

import nbd

from nbdcbttest import require, scratch_dir

require("qemu-storage-daemon")

HELPER = os.path.join(os.getcwd(), "hbitmap-sha256")
if not os.access(HELPER, os.X_OK):
    print("FAIL: helper %s not built" % HELPER)
    sys.exit(1)

KiB, MiB = 1024, 1024 * 1024
GRANULARITIES = [512, 4 * KiB, 64 * KiB, 1 * MiB, 2 * 1024 * MiB]

# Sizes are multiples of 512 (QEMU rounds a file's length up to a sector).
SIZES = [
    512,                        # one sector: one bit at every granularity
    1 * MiB + 512,              # not a multiple of 64 KiB nor of 64 granules
    64 * MiB,                   # exactly 1024 granules of 64 KiB
    64 * 64 * KiB * 3 + 7 * 512,  # 3 words of 64 KiB granules plus a bit
    8 * MiB - 512,              # 16383 bits at 512: last word partial
]


class QMP:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        end = time.time() + 30
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.time() > end:
                    raise
                time.sleep(0.02)
        self.f = self.sock.makefile("rw")
        json.loads(self.f.readline())          # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, command, /, **args):
        # QMP spells arguments with '-': node_name= is "node-name".
        args = {k.replace("_", "-"): v for k, v in args.items()}
        self.f.write(json.dumps({"execute": command, "arguments": args})
                     + "\n")
        self.f.flush()
        while True:
            reply = json.loads(self.f.readline())
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError("%s: %s" % (command, reply["error"]))
            return reply["return"]

    def close(self):
        self.f.close()
        self.sock.close()


def random_writes(rng, size):
    """Ranges to write: random small and large ones, ones crossing word
    boundaries, and the very last byte."""
    ranges = [(size - 1, 1)]
    for _ in range(rng.randint(0, 12)):
        off = rng.randrange(size)
        length = rng.choice([1, 512, 4096, 65536, rng.randrange(1, 3 * MiB)])
        ranges.append((off, min(length, size - off)))
    for g in (512, 64 * KiB):
        b = 64 * g
        if b < size:
            ranges.append((b - 1, min(2, size - b + 1)))
    return ranges


def check_size(size, rng, tmp, index):
    disk = os.path.join(tmp, "disk%d.raw" % index)
    qmp_sock = os.path.join(tmp, "qmp%d.sock" % index)
    nbd_sock = os.path.join(tmp, "nbd%d.sock" % index)
    with open(disk, "wb") as f:
        f.truncate(size)

    proc = subprocess.Popen([
        "qemu-storage-daemon",
        "--blockdev", "driver=file,node-name=n0,filename=" + disk,
        "--nbd-server", "addr.type=unix,addr.path=" + nbd_sock,
        "--export", "type=nbd,id=e0,node-name=n0,writable=on",
        "--chardev", "socket,id=qmp,path=%s,server=on,wait=off" % qmp_sock,
        "--monitor", "chardev=qmp",
    ])
    failures = 0
    try:
        qmp = QMP(qmp_sock)
        for g in GRANULARITIES:
            qmp.cmd("block-dirty-bitmap-add", node="n0", name="b%d" % g,
                    granularity=g)

        ops = random_writes(rng, size)
        write(nbd_sock, ops)
        failures += compare(qmp, size, ops)

        # Shrink (bits past the new end are gone), grow (new space is
        # clean), write again, compare again.
        small = max(512, (size * 2 // 3) // 512 * 512 - 512 * rng.randrange(2))
        big = small + 3 * 64 * 64 * KiB // 2 + 512
        resize(qmp, small)
        resize(qmp, big)
        ops += ["=%d" % small, "=%d" % big]
        more = random_writes(rng, big)
        write(nbd_sock, more)
        ops += more
        failures += compare(qmp, big, ops, size)

        qmp.cmd("quit")
        qmp.close()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return failures


def resize(qmp, size):
    """block_resize n0; the NBD export holds no resize permission, so take
    it down meanwhile."""
    qmp.cmd("block-export-del", id="e0")
    end = time.time() + 30
    while any(e["id"] == "e0" for e in qmp.cmd("query-block-exports")):
        if time.time() > end:
            raise RuntimeError("export e0 not deleted")
        time.sleep(0.02)
    qmp.cmd("block_resize", node_name="n0", size=size)
    qmp.cmd("block-export-add", type="nbd", id="e0", node_name="n0",
            writable=True)


def write(nbd_sock, ranges):
    """Write RANGES through a fresh NBD connection (its size is read at
    connection time, so it sees a resize)."""
    h = nbd.NBD()
    h.set_export_name("n0")      # qsd names the export after the node
    h.connect_unix(nbd_sock)
    for off, length in ranges:
        h.pwrite(bytes([0x55]) * length, off)
    h.flush()
    h.shutdown()


def compare(qmp, size, ops, initial_size=None):
    """Compare every bitmap on n0 with the helper replaying OPS (ranges
    and "=NEWSIZE" resizes) from INITIAL_SIZE.  Returns the mismatches."""
    failures = 0
    if initial_size is None:
        initial_size = size
    args = [a if isinstance(a, str) else "%d:%d" % a for a in ops]

    # A bitmap added after the writes stays clean.
    qmp.cmd("block-dirty-bitmap-add", node="n0", name="clean",
            granularity=64 * KiB)
    want_sha = qmp.cmd("x-debug-block-dirty-bitmap-sha256",
                       node="n0", name="clean")["sha256"]
    out = subprocess.check_output([HELPER, str(size), str(64 * KiB)],
                                  text=True).split()
    qmp.cmd("block-dirty-bitmap-remove", node="n0", name="clean")
    if out != [want_sha, "0"]:
        print("FAIL size=%d clean bitmap: qemu %s, hbitmap %s"
              % (size, want_sha, out))
        failures += 1

    counts = {}
    for node in qmp.cmd("query-named-block-nodes", flat=True):
        if node.get("node-name") == "n0":
            for bm in node.get("dirty-bitmaps", []):
                counts[bm["name"]] = bm["count"]

    for g in GRANULARITIES:
        want_sha = qmp.cmd("x-debug-block-dirty-bitmap-sha256",
                           node="n0", name="b%d" % g)["sha256"]
        want_count = counts["b%d" % g]
        out = subprocess.check_output(
            [HELPER, str(initial_size), str(g)] + args, text=True).split()
        ok = out == [want_sha, str(want_count)]
        print("%s size=%d granularity=%d ops=%d: qemu %s %d, "
              "hbitmap %s %s" % ("ok  " if ok else "FAIL", size, g,
                                 len(ops), want_sha, want_count,
                                 out[0], out[1]))
        if not ok:
            print("  ops:", args)
            failures += 1
    return failures


def main():
    seed = int(os.environ.get("HBITMAP_SEED", "4242"))
    print("seed %d (HBITMAP_SEED=%d to reproduce)" % (seed, seed))
    rng = random.Random(seed)
    tmp = scratch_dir()
    failures = 0
    for i, size in enumerate(SIZES):
        failures += check_size(size, rng, tmp, i)
    if failures:
        print("%d mismatches" % failures)
        sys.exit(1)


main()
