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

"""Control clients that go away while others work (nbdcbt): a client
whose backup session was begun with end-on-disconnect closes while
another client's transaction holds the disk to begin a session of its
own.  Ending the first session used to take the session lock, then wait
for the disk's write gate, while the transaction held the gate and waited
for the session lock: both stopped for ever (and the server with them).
Also: a client that closes right after sending a command, and a session
ended twice."""

import json
import socket
import time

from qmptest import NODE, NbdcbtDaemon

G = 1024 * 1024 * 1024

# A big disk with 512-byte granules makes each merge take a while, so the
# transaction holds the disk long enough for the other client to close.
d = NbdcbtDaemon(size=64 * G)
d.start()
try:
    q = d.qmp
    q.cmd("block-dirty-bitmap-add", node=NODE, name="b0", granularity=512)
    q.cmd("block-dirty-bitmap-add", node=NODE, name="b1", granularity=512)
    merges = [{"type": "block-dirty-bitmap-merge",
               "data": {"node": NODE, "target": "b1", "bitmaps": ["b0"]}}
              ] * 3000

    # The race, several times with the close at different moments.
    for i, delay in enumerate((0.05, 0.1, 0.2, 0.3, 0.15)):
        owner = d.connect_qmp()
        owner.cmd("backup-begin", node=NODE, id="owned%d" % i,
                  **{"end-on-disconnect": True})
        tx = {"execute": "transaction", "id": "tx%d" % i,
              "arguments": {"actions": merges + [
                  {"type": "backup-begin",
                   "data": {"node": NODE, "id": "tx%d" % i}}]}}
        q.send_raw(json.dumps(tx).encode() + b"\n")
        time.sleep(delay)
        owner.close()
        q.sock.settimeout(60)
        try:
            r = q.recv()
            while r is not None and "event" in r:
                r = q.recv()
        except socket.timeout:
            d.proc.kill()
            raise AssertionError("the transaction never answered: the "
                                 "server is deadlocked")
        assert r == {"return": {}, "id": "tx%d" % i}, r
        q.cmd("backup-end", id="tx%d" % i, success=True)
        end = time.time() + 60
        while any(s["id"] == "owned%d" % i for s in q.cmd("query-backups")):
            assert time.time() < end, "session owned%d did not end" % i
            time.sleep(0.1)
    print("5 disconnects during a transaction: no deadlock")

    # Ended twice: the second is an error, nothing else changes.
    q.cmd("backup-begin", node=NODE, id="twice", bitmap="b0")
    q.cmd("backup-end", id="twice", success=False)
    r = q.try_cmd("backup-end", id="twice", success=False)
    assert r == ("error", "GenericError",
                 "Backup session 'twice' not found"), r
    assert q.cmd("query-backups") == []
    bitmaps = {b["name"]: b for b in q.cmd("query-named-block-nodes")[0]
               ["dirty-bitmaps"]}
    assert not bitmaps["b0"]["busy"] and bitmaps["b0"]["recording"], bitmaps

    # A client that sends a command and closes before its answer.
    for _ in range(5):
        c = d.connect_qmp()
        c.send_raw(json.dumps({"execute": "transaction", "arguments": {
            "actions": merges[:500]}}).encode() + b"\n")
        c.close()
    assert q.cmd("query-version")
    assert d.stop() == 0
finally:
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()
print("ok")
