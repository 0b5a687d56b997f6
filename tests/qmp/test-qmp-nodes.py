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

"""Several exports behind one control socket (nbdcbt): each export is a
node; query-named-block-nodes and query-block list them all; bitmaps are
per node; merge takes {node, name} sources from another node of the same
size and refuses one of another size; a raw image is a node with
bitmaps too."""

import os
import subprocess
import tempfile

from qmptest import QMP, NBDCBT, _wait_for, scratch_dir

d = tempfile.mkdtemp(dir=scratch_dir())
imgs = {}
for name, size in (("vm1", "4M"), ("vm2", "4M"), ("vm3", "8M")):
    imgs[name] = os.path.join(d, name + ".qcow2")
    subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2",
                           imgs[name], size])
raw = os.path.join(d, "plain.raw")
with open(raw, "wb") as f:
    f.truncate(1 << 20)
sock, ctl = os.path.join(d, "nbd.sock"), os.path.join(d, "ctl.sock")
proc = subprocess.Popen([NBDCBT, "-f", "-U", sock, "--control", ctl]
                        + ["--export=%s=%s" % (n, imgs[n]) for n in imgs]
                        + ["--export=plain=" + raw])
try:
    _wait_for(ctl, proc)
    q = QMP(ctl)
    nodes = q.cmd("query-named-block-nodes")
    assert [n["node-name"] for n in nodes] == ["vm1", "vm2", "vm3", "plain"]
    assert nodes[0]["drv"] == "qcow2"
    assert nodes[0]["image"]["virtual-size"] == 4 << 20
    blocks = q.cmd("query-block")
    assert [b["device"] for b in blocks] == ["vm1", "vm2", "vm3", "plain"]

    for n in ("vm1", "vm2", "vm3"):
        q.cmd("block-dirty-bitmap-add", node=n, name="b0")
    q.cmd("block-dirty-bitmap-add", node="vm2", name="only2")
    by_node = {n["node-name"]: [b["name"] for b in n.get("dirty-bitmaps", [])]
               for n in q.cmd("query-named-block-nodes")}
    assert by_node["vm1"] == ["b0"] and by_node["vm2"] == ["b0", "only2"]

    import nbd
    h = nbd.NBD()
    h.set_export_name("vm2")
    h.connect_unix(sock)
    h.pwrite(b"z" * 4096, 1 << 20)
    h.flush()
    h.shutdown()
    vm2 = q.cmd("x-debug-block-dirty-bitmap-sha256", node="vm2", name="b0")
    vm1 = q.cmd("x-debug-block-dirty-bitmap-sha256", node="vm1", name="b0")
    assert vm1 != vm2

    # Across nodes of the same size: vm1's b0 gets vm2's bits.
    q.cmd("block-dirty-bitmap-merge", node="vm1", target="b0",
          bitmaps=[{"node": "vm2", "name": "b0"}])
    assert q.cmd("x-debug-block-dirty-bitmap-sha256", node="vm1",
                 name="b0") == vm2
    # In a transaction, with a failure after it: undone.
    r = q.try_cmd("transaction", actions=[
        {"type": "block-dirty-bitmap-clear",
         "data": {"node": "vm1", "name": "b0"}},
        {"type": "block-dirty-bitmap-merge",
         "data": {"node": "vm3", "target": "b0",
                  "bitmaps": [{"node": "vm2", "name": "b0"}]}}])
    assert r == ("error", "GenericError",
                 "Bitmaps are incompatible and can't be merged"), r
    assert q.cmd("x-debug-block-dirty-bitmap-sha256", node="vm1",
                 name="b0") == vm2
    r = q.try_cmd("block-dirty-bitmap-merge", node="vm1", target="b0",
                  bitmaps=[{"node": "vm2", "name": "nope"}])
    assert r == ("error", "GenericError", "Dirty bitmap 'nope' not found"), r

    # A raw image is tracked too (the shorthand puts the dirty filter over
    # it, with its QBM sidecar as the store).
    r = q.try_cmd("block-dirty-bitmap-add", node="plain", name="x")
    assert r == ("ok", {}), r
    by_node = {n["node-name"]: [b["name"] for b in n.get("dirty-bitmaps", [])]
               for n in q.cmd("query-named-block-nodes")}
    assert by_node["plain"] == ["x"], by_node
    r = q.try_cmd("block-dirty-bitmap-add", node="nowhere", name="x")
    assert r == ("error", "GenericError",
                 "Cannot find device='nowhere' nor node-name='nowhere'"), r
    q.close()
finally:
    proc.terminate()
    rc = proc.wait(60)
assert rc == 0, "nbdcbt exited %d" % rc
print("ok")
