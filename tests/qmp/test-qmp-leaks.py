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

"""Bad input leaks nothing (nbdcbt under valgrind): failed and aborted
transactions of every kind (grouped backup-begin ones used to leak their
group), failed commands, parse errors, clients that close half-way
through a message or a session.  The server is stopped with quit and
valgrind's exit status says whether any block was definitely lost.
Skipped without valgrind, and in sanitizer builds (ASan checks leaks
there)."""

import json
import os
import shutil
import subprocess
import sys

from nbdcbttest import skip
from qmptest import NODE, NbdcbtDaemon

if shutil.which("valgrind") is None:
    skip("valgrind is not installed")
if subprocess.run(["grep", "-q", "fsanitize", os.path.join(
        os.environ.get("top_builddir", "../.."), "Makefile")]).returncode == 0:
    skip("a sanitizer build")

log = os.path.join(os.getcwd(), "test-qmp-leaks.valgrind")
os.environ["NBDCBT_VALGRIND"] = (
    "valgrind -q --leak-check=full --errors-for-leak-kinds=definite "
    "--show-leak-kinds=definite --error-exitcode=99 --log-file=" + log)


def act(type_, **data):
    return {"type": type_, "data": data}


def bitmap(op, name, **kw):
    return act("block-dirty-bitmap-" + op, node=NODE, name=name, **kw)


ABORT = act("abort")
GROUPED = {"completion-mode": "grouped"}

d = NbdcbtDaemon()
d.start()
try:
    q = d.qmp
    q.cmd("block-dirty-bitmap-add", node=NODE, name="b0")
    q.cmd("block-dirty-bitmap-add", node=NODE, name="b1", disabled=True)
    d.write(0, b"x" * 65536)
    failing = [
        ([bitmap("add", "t"), bitmap("clear", "b0"), bitmap("disable", "b0"),
          bitmap("enable", "b1"), bitmap("remove", "b1"),
          act("block-dirty-bitmap-merge", node=NODE, target="b0",
              bitmaps=["b1", {"node": NODE, "name": "b1"}]), ABORT], None),
        ([act("backup-begin", node=NODE, id="a", bitmap="b0"),
          act("backup-begin", node=NODE, id="b"), ABORT], None),
        ([act("backup-begin", node=NODE, id="a", bitmap="b0"),
          act("backup-begin", node=NODE, id="b", delta=True), ABORT],
         GROUPED),
        ([act("backup-begin", node=NODE, id="a"),
          act("backup-begin", node=NODE, id="a")], GROUPED),
        ([act("backup-begin", node=NODE, id="a"),
          act("backup-begin", node=NODE, id="b", bitmap="nope")], GROUPED),
        ([bitmap("add", "t"), bitmap("add", "t")], None),
        ([bitmap("remove", "b0"), bitmap("remove", "b0")], None),
        ([bitmap("add", "", granularity=512)], None),
        ([act("block-dirty-bitmap-merge", node=NODE, target="b0",
              bitmaps=["b1", {"node": "nope", "name": "b1"}])], None),
    ]
    for actions, props in failing:
        args = {"actions": actions}
        if props:
            args["properties"] = props
        r = q.try_cmd("transaction", **args)
        assert r[0] == "error", (actions, r)
    for bad in [
            {"execute": "backup-begin", "arguments": {"node": NODE,
                                                      "bitmap": "nope"}},
            {"execute": "backup-begin", "arguments": {"node": "nope"}},
            {"execute": "backup-begin", "arguments": {"node": NODE,
                                                      "export-name": NODE}},
            {"execute": "backup-end", "arguments": {"id": "x",
                                                    "success": True}},
            {"execute": "block-dirty-bitmap-add",
             "arguments": {"node": NODE, "name": "b0"}},
            {"execute": "block-dirty-bitmap-merge",
             "arguments": {"node": NODE, "target": "b0",
                           "bitmaps": ["nope"]}},
            {"execute": "nope", "id": {"a": [1, 2]}}]:
        r = q.execute(bad)
        assert "error" in r, (bad, r)
    for raw in [b"garbage", b'{"execute": "x", "id": "\xff"}', b"[" * 100,
                b'{"execute": "query-version", "id": NaN}']:
        q.send_raw(raw + b"\n")
        r = q.recv()
        assert "error" in r, (raw, r)
    # A session whose client goes away, a client gone mid-message.
    c = d.connect_qmp()
    c.cmd("backup-begin", node=NODE, id="owned", bitmap="b0",
          **{"end-on-disconnect": True})
    c.close()
    c = d.connect_qmp()
    c.send_raw(b'{"execute": "block-dirty-bitmap-add", "argu')
    c.close()
    # A session left open: ended by the shutdown.
    q.cmd("backup-begin", node=NODE, id="open", bitmap="b1")
    r = q.execute({"execute": "quit"})
    assert r == {"return": {}}, r
    rc = d.proc.wait(300)
    d.proc = None
finally:
    if d.proc is not None:
        d.proc.kill()
        d.proc.wait()
if rc != 0:
    sys.stdout.write(open(log).read())
    sys.exit("nbdcbt exited with status %d (99: valgrind found a leak)" % rc)
os.unlink(log)
print("ok")
