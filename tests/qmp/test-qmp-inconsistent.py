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

"""A persistent bitmap left in use by a crash is inconsistent, side by
side with qemu-storage-daemon: the same query fields (inconsistent: true),
clear/enable/merge refused with QEMU's messages, remove allowed; and a
bitmap offered over NBD is not busy in nbdcbt (clear works while a client
has it negotiated)."""

import os
import subprocess

from qmptest import NODE, NbdcbtDaemon, compare, run_on_copies, scratch_dir

# An image whose bitmap b0 is marked in use: qemu-io killed while the
# image was open read-write.
base = os.path.join(scratch_dir(), "crashed.qcow2")
subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", base, "4M"])
subprocess.check_call(["qemu-img", "bitmap", "--add", base, "b0"])
subprocess.check_call(["qemu-img", "bitmap", "--add", base, "ok"])
subprocess.call(["qemu-io", "-f", "qcow2", "-c", "write 0 4k",
                 "-c", "sigraise 9", base],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
info = subprocess.check_output(["qemu-img", "info", "-U", base]).decode()
assert "in-use" in info, info


def run(d):
    out = []
    q = d.qmp
    out.append(("fields", sorted((n, sorted(b.items()))
                                 for n, b in d.nodes_bitmaps().items())))
    for cmd, args in [
            ("block-dirty-bitmap-clear", {"name": "b0"}),
            ("block-dirty-bitmap-enable", {"name": "b0"}),
            ("block-dirty-bitmap-disable", {"name": "b0"}),
            ("block-dirty-bitmap-add", {"name": "b0"}),
            ("block-dirty-bitmap-add", {"name": "n1"}),
            ("block-dirty-bitmap-merge", {"target": "n1", "bitmaps": ["b0"]}),
            ("block-dirty-bitmap-merge", {"target": "b0", "bitmaps": ["n1"]}),
            ("transaction", None),
            ("block-dirty-bitmap-remove", {"name": "b0"}),
            ("block-dirty-bitmap-remove", {"name": "ok"}),
            ("block-dirty-bitmap-add", {"name": "b0"})]:
        if cmd == "transaction":
            r = q.try_cmd(cmd, actions=[
                {"type": "block-dirty-bitmap-clear",
                 "data": {"node": NODE, "name": "n1"}},
                {"type": "block-dirty-bitmap-clear",
                 "data": {"node": NODE, "name": "b0"}}])
        else:
            r = q.try_cmd(cmd, node=NODE, **args)
        out.append((cmd, args, r))
    out.append(("fields", sorted((n, sorted(b.items()))
                                 for n, b in d.nodes_bitmaps().items())))
    return out


results = run_on_copies(base, run)
for name, steps in results.items():
    print("%s: %d steps" % (name, len(steps)))
compare(results)

# nbdcbt: a bitmap offered over NBD is not busy; it can be cleared while
# the client reads it.
with NbdcbtDaemon() as d:
    d.qmp.cmd("block-dirty-bitmap-add", node=NODE, name="live")
    d.write(0, b"x" * 65536)
    h = d.nbd(NODE, ["qemu:dirty-bitmap:live"])
    assert h.can_meta_context("qemu:dirty-bitmap:live")
    assert not d.nodes_bitmaps()["live"]["busy"]
    assert d.nodes_bitmaps()["live"]["count"] == 65536
    d.qmp.cmd("block-dirty-bitmap-clear", node=NODE, name="live")
    seen = []

    def cb(meta, offset, entries, err):
        if meta == "qemu:dirty-bitmap:live":
            seen.extend(entries)
        return 0
    h.block_status(65536, 0, cb)
    assert seen[1] == 0, seen     # the client sees the clear at once
    h.shutdown()
print("ok")
