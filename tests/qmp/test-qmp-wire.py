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

"""The QMP wire protocol and argument checking, side by side with
qemu-storage-daemon: the same raw messages get the same error classes and
messages (JSON syntax errors: the same class), the same "id" echoes and
the same greeting shape."""

import json

from qmptest import NODE, compare, daemon_classes

ADD = "block-dirty-bitmap-add"
MERGE = "block-dirty-bitmap-merge"


def ex(name, args=None, **extra):
    m = {"execute": name}
    if args is not None:
        m["arguments"] = args
    m.update(extra)
    return json.dumps(m).encode()


BEFORE = [
    ex("query-version"),
    ex("nonexistent-command"),
    ex("query-version", id=7),
]

AFTER = [
    ex("qmp_capabilities"),
    ex("qmp_capabilities", id="again"),
    ex("nonexistent-command"),
    ex("nonexistent-command", id=[1, 2]),
    b"[1]",
    b'"a string"',
    b"{}",
    b'{"arguments": {}}',
    b'{"foo": 1}',
    b'{"execute": 1}',
    b'{"execute": "query-version", "arguments": []}',
    b'{"execute": "query-version", "arguments": null}',
    b'{"execute": "query-version", "id": 1, "control": 2}',
    b'{"exec-oob": "query-version"}',
    ex("query-version", {"x": 1}),
    ex("quit", {"now": True}),
    ex(ADD, {"node": NODE}),
    ex(ADD, {"name": "b"}),
    ex(ADD, {"node": NODE, "name": 5}),
    ex(ADD, {"node": 5, "name": "b"}),
    ex(ADD, {"node": NODE, "name": "b", "granularity": "x"}),
    ex(ADD, {"node": NODE, "name": "b", "granularity": -1}),
    ex(ADD, {"node": NODE, "name": "b", "granularity": 1.5}),
    ex(ADD, {"node": NODE, "name": "b", "granularity": None}),
    ex(ADD, {"node": NODE, "name": "b", "granularity": 2**32}),
    ex(ADD, {"node": NODE, "name": "b", "granularity": 1000}),
    ex(ADD, {"node": NODE, "name": "b", "granularity": 0}),
    ex(ADD, {"node": NODE, "name": "b", "granularity": 256}),
    ex(ADD, {"node": NODE, "name": "b", "persistent": "yes"}),
    ex(ADD, {"node": NODE, "name": "b", "disabled": 1}),
    ex(ADD, {"node": NODE, "name": "b", "zz": 1}),
    ex(ADD, {"node": NODE, "name": "b", "zz": 1, "granularity": "x"}),
    ex(ADD, {"node": "no-such-node", "name": "b"}),
    ex(ADD, {"node": NODE, "name": ""}),
    ex(ADD, {"node": "no-such-node", "name": ""}),
    ex("transaction", {"actions": [
        {"type": ADD, "data": {"node": "no-such-node", "name": ""}}]}),
    ex("block-dirty-bitmap-remove", {"node": NODE, "name": "nope"}),
    ex("block-dirty-bitmap-clear", {"node": NODE, "name": "nope"}),
    ex("block-dirty-bitmap-enable", {"node": NODE, "name": "nope"}),
    ex("block-dirty-bitmap-disable", {"node": NODE, "name": "nope"}),
    ex("block-dirty-bitmap-clear", {"node": NODE}),
    ex("x-debug-block-dirty-bitmap-sha256", {"node": NODE, "name": "nope"}),
    ex(MERGE, {"node": NODE, "target": "t", "bitmaps": "b"}),
    ex(MERGE, {"node": NODE, "target": "t", "bitmaps": [5]}),
    ex(MERGE, {"node": NODE, "target": "t", "bitmaps": [{"node": NODE}]}),
    ex(MERGE, {"node": NODE, "target": "t",
               "bitmaps": [{"node": NODE, "name": "b", "x": 1}]}),
    ex(MERGE, {"node": NODE, "target": "nope", "bitmaps": ["b"]}),
    ex(MERGE, {"node": NODE, "bitmaps": ["b"]}),
    ex("transaction", {}),
    ex("transaction", {"actions": {}}),
    ex("transaction", {"actions": []}),
    ex("transaction", {"actions": [1]}),
    ex("transaction", {"actions": [{"type": "nope", "data": {}}]}),
    ex("transaction", {"actions": [{"data": {}}]}),
    ex("transaction", {"actions": [{"type": "abort"}]}),
    ex("transaction", {"actions": [{"type": "abort", "data": {"x": 1}}]}),
    ex("transaction", {"actions": [{"type": "abort", "data": {}}]}),
    ex("transaction", {"actions": [{"type": "abort", "data": {}, "y": 2}]}),
    ex("transaction", {"actions": [{"type": ADD, "data": {"node": NODE}}]}),
    ex("transaction", {"actions": [
        {"type": ADD, "data": {"node": NODE, "name": "t"}},
        {"type": ADD, "data": {"node": NODE}}]}),
    ex("transaction", {"actions": [{"type": "abort", "data": {}}],
                       "properties": {"completion-mode": "grouped"}}),
    ex("transaction", {"actions": [{"type": "abort", "data": {}}],
                       "properties": {"completion-mode": "nope"}}),
    ex("transaction", {"actions": [
        {"type": ADD, "data": {"node": NODE, "name": "t"}}],
        "properties": {"completion-mode": "grouped"}}),
    b"garbage",
    b'{"execute": "query-version"',   # continued by the next line
    b"}",
    ex("query-named-block-nodes", {"flat": "x"}),
    ex("query-block", {"x": 1}),
]


def shape(r):
    """What must agree: error class and text, the id, and for a return its
    kind (the values differ: versions, node lists)."""
    if r is None:
        return None
    if "error" in r:
        desc = r["error"]["desc"]
        if desc.startswith("JSON parse error"):
            desc = "JSON parse error"
        return ("error", r["error"]["class"], desc, r.get("id"))
    return ("return", type(r["return"]).__name__, r.get("id"))


def run(daemon):
    out = []
    q = daemon.own_qmp(negotiate=False)
    g = q.greeting
    out.append(("greeting", sorted(g), sorted(g["QMP"]),
                sorted(g["QMP"]["version"]), sorted(g["QMP"]["version"]
                                                    ["qemu"])))
    for m in BEFORE + AFTER:
        q.send_raw(m + b"\n")
        if m.endswith(b'"query-version"'):
            continue                    # the message goes on
        r = q.recv()
        while r is not None and "event" in r:
            r = q.recv()
        out.append((m.decode()[:80], shape(r)))
    q.close()
    daemon.reconnect()
    return out


results = {}
for cls in daemon_classes():
    with cls() as d:
        results[d.name] = run(d)
        # Nothing above changed anything.
        assert "t" not in d.nodes_bitmaps() and "b" not in d.nodes_bitmaps()
for name, steps in results.items():
    print("%s: %d steps" % (name, len(steps)))
compare(results)
