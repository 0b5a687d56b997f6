#!/usr/bin/python3
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

"""Bitmap commands with writes between them, side by side with
qemu-storage-daemon: every command's return or error, the bitmap fields
of query-named-block-nodes, the SHA-256 digests and the dirty maps over
NBD must be the same.  Exercises add (granularity, persistent, disabled),
enable, disable, clear, merge (names, {node, name}, other granularity),
remove, and the error cases in between."""

from qmptest import NODE, compare, daemon_classes

ADD = "block-dirty-bitmap-add"
K = 1024
M = 1024 * 1024


def run(d):
    out = []
    q = d.qmp

    def step(cmd, **args):
        out.append((cmd, args, q.try_cmd(cmd, **args)))

    def state(*names):  # noqa: E306
        bms = d.nodes_bitmaps()
        out.append(("fields", sorted((n, sorted(b.items()))
                                     for n, b in bms.items())))
        for n in names:
            out.append(("sha256", n, d.sha256(n)))

    def dmap(name):
        out.append(("map", name, d.dirty_map(name)))

    step(ADD, node=NODE, name="b0")
    step(ADD, node=NODE, name="b1", granularity=512, disabled=True)
    step(ADD, node=NODE, name="b2", persistent=True, granularity=128 * K)
    step(ADD, node=NODE, name="b3", granularity=2**31)
    step(ADD, node=NODE, name="b0")
    step(ADD, node=NODE, name="x" * 1024)
    state("b0", "b1", "b2", "b3")

    d.write(0, b"a" * 4096)
    d.write(M + 100, b"b" * 1000)
    d.zero(2 * M, 64 * K)
    state("b0", "b1", "b2", "b3")
    dmap("b0")
    dmap("b2")

    step("block-dirty-bitmap-enable", node=NODE, name="b1")
    step("block-dirty-bitmap-enable", node=NODE, name="b1")
    d.write(3 * M, b"c" * 512)
    d.write(3 * M + 4 * K + 7, b"c" * 3)
    step("block-dirty-bitmap-disable", node=NODE, name="b1")
    d.write(3 * M + 64 * K, b"d" * 4096)
    state("b1")
    dmap("b1")

    # Merge: other granularities, both source spellings.
    step("block-dirty-bitmap-merge", node=NODE, target="b1",
         bitmaps=["b0"])
    step("block-dirty-bitmap-merge", node=NODE, target="b2",
         bitmaps=[{"node": NODE, "name": "b1"}, "b3"])
    step("block-dirty-bitmap-merge", node=NODE, target="b1",
         bitmaps=["b0", "nope"])
    step("block-dirty-bitmap-merge", node=NODE, target="b1",
         bitmaps=[{"node": "no-node", "name": "b0"}])
    state("b0", "b1", "b2", "b3")
    dmap("b1")
    dmap("b2")

    step("block-dirty-bitmap-clear", node=NODE, name="b0")
    step("block-dirty-bitmap-clear", node=NODE, name="b3")
    state("b0", "b3")
    d.write(4 * M - 512, b"e" * 512)
    state("b0", "b1", "b3")
    dmap("b0")

    step("block-dirty-bitmap-remove", node=NODE, name="b3")
    step("block-dirty-bitmap-remove", node=NODE, name="b3")
    step("block-dirty-bitmap-remove", node=NODE, name="b2")
    step("x-debug-block-dirty-bitmap-sha256", node=NODE, name="b2")
    # A name can be used again once removed.
    step(ADD, node=NODE, name="b2", disabled=True)
    state("b0", "b1", "b2")
    return out


results = {}
for cls in daemon_classes():
    with cls() as d:
        results[d.name] = run(d)
for name, steps in results.items():
    print("%s: %d steps" % (name, len(steps)))
compare(results)
