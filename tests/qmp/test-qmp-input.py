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

"""Input that is not JSON as QMP wants it, against both daemons: invalid
UTF-8, NaN and Infinity, a command name with a NUL character, and what
json-c's lenient parser takes and QEMU's does not (a key named twice,
trailing commas, comments, True, leading zeros).  Each gets a JSON parse
error or CommandNotFound, nothing changes, and every answer is strict
JSON in UTF-8 (nbdcbt used to create a bitmap named "\\xff", making every
later query's answer invalid UTF-8, to echo an "id" of NaN as NaN, to
run "quit\\u0000" as quit, and to act on the last of two "name" keys).
After a parse error, the commands that follow on the same line run, as
in QEMU."""

import json
import time

from qmptest import NODE, QMP, compare, daemon_classes


def strict(line):
    """LINE parsed as RFC 8259 JSON in UTF-8, or AssertionError."""
    def bad_constant(c):
        raise AssertionError("not JSON: %s in %r" % (c, line))
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise AssertionError("answer is not UTF-8: %r" % line)
    return json.loads(text, parse_constant=bad_constant)


def next_answer(q):
    """The next answer on Q (events skipped), parsed strictly."""
    while True:
        while b"\n" not in q.buf:
            d = q.sock.recv(65536)
            assert d, "the server closed the connection"
            q.buf += d
        line, q.buf = q.buf.split(b"\n", 1)
        r = strict(line)
        if "event" not in r:
            return r


def answers(q, msg):
    """Send MSG, then a sentinel; the answers before the sentinel's."""
    q.send_raw(msg + b'\n{"execute": "query-version", "id": "sentinel"}\n')
    out = []
    while True:
        r = next_answer(q)
        if r.get("id") == "sentinel":
            assert "return" in r, r
            return out
        out.append(r)


BAD_JSON = [
    b'{"execute": "query-version", "id": "\xff\xfe"}',
    b'{"execute": "block-dirty-bitmap-add", "arguments": '
    b'{"node": "%s", "name": "\xff"}}' % NODE.encode(),
    b'{"execute": "block-dirty-bitmap-add", "arguments": '
    b'{"node": "%s", "name": "caf\xc3"}}' % NODE.encode(),
    b'{"execute": "query-version", "id": NaN}',
    b'{"execute": "query-version", "id": [1, {"a": -Infinity}]}',
    b'{"execute": "block-dirty-bitmap-add", "arguments": '
    b'{"node": "%s", "name": "n", "granularity": Infinity}}'
    % NODE.encode(),
    # What json-c's lenient parser takes and QEMU refuses: an object
    # naming a key twice (json-c kept the last, so the first add made a
    # bitmap "d2"), a trailing comma, a comment, a literal not in lower
    # case, a number with a leading zero.
    b'{"execute": "block-dirty-bitmap-add", "arguments": '
    b'{"node": "%s", "name": "d1", "name": "d2"}}' % NODE.encode(),
    b"{'execute': 'block-dirty-bitmap-add', 'arguments': "
    b"{'node': '%s', 'name': 'd3', \"name\": \"d4\"}}" % NODE.encode(),
    b'{"execute": "query-version", "id": {"a": 1, "b": {"a": 1, "a": 2}}}',
    b'{"execute": "query-version", "execute": "query-version"}',
    b'{"execute": "block-dirty-bitmap-add", "arguments": '
    b'{"node": "%s", "name": "d5",}}' % NODE.encode(),
    b'{"execute": "query-version", "id": [1, 2,]}',
    b'{"execute": "block-dirty-bitmap-add", "arguments": '
    b'{"node": "%s", "name": "d6"} /* c */}' % NODE.encode(),
    b'{"execute": "block-dirty-bitmap-add", "arguments": '
    b'{"node": "%s", "name": "d7", "disabled": True}}' % NODE.encode(),
    b'{"execute": "query-version", "id": NULL}',
    b'{"execute": "block-dirty-bitmap-add", "arguments": '
    b'{"node": "%s", "name": "d8", "granularity": 065536}}'
    % NODE.encode(),
    b'{"execute": "query-version", "id": -01}',
]

# Strings that hold what the checks above look for outside strings.
GOOD_JSON = [
    (b'{"execute": "query-version", "id": "a:b/c,} /* x */ True 01"}',
     "a:b/c,} /* x */ True 01"),
    (b"{'execute': 'query-version', 'id': 'key: \"q\", ] \\\\'}",
     'key: "q", ] \\'),
    # The escape \' in either kind of string (json-c has no such escape).
    (b"{'execute': 'query-version', 'id': 'it\\'s'}", "it's"),
    (b'{"execute": "query-version", "id": "a\\\'b"}', "a'b"),
    (b"{'execute': 'query-version', 'id': '\\\\\\''}", "\\'"),
    (b'{"execute": "query-version", "id": [0, -0.5, 10, 1e5, 2.0E-3, '
     b'true, false, null, {"a": {"b": []}}]}',
     [0, -0.5, 10, 1e5, 2.0E-3, True, False, None, {"a": {"b": []}}]),
]

# Messages that come in several reads, split inside an escape.
SPLIT = [
    ([b"{'execute': 'query-version', 'id': 'a\\", b"'b'}"], "a'b"),
    ([b"{'execute': 'query-version', 'id': 'a\\", b"\\", b"\\'b'}"],
     "a\\'b"),
    ([b'{"execute": "query-version", "id": "a\\', b'u0041\\', b'"\\', b"'\""
      b"}"], "aA\"'"),
]

NOT_FOUND = [
    b'{"execute": "quit\\u0000", "id": 1}',
    b'{"execute": "query-version\\u0000x", "id": 2}',
    b'{"execute": "block-dirty-bitmap-add\\u0000", "arguments": '
    b'{"node": "%s", "name": "z"}, "id": 3}' % NODE.encode(),
]


# After a parse error the parser resynchronises as QEMU's does: the
# commands that follow on the same line still run (nbdcbt dropped the rest
# of the line, so they went unanswered and their client waited for ever),
# and a control character resets a message the client abandoned (the QMP
# specification's advice to clients).
def qv(i):
    return b'{"execute": "query-version", "id": %d}' % i


RESYNC = [
    b"garbage" + qv(1),
    qv(2) + b"}" + qv(3),
    qv(4) + b" xyz " + qv(5),
    qv(6) + b"\x00" + qv(7),
    b"\x04" + qv(8),
    b'{"execute": "blo\x04' + qv(9),
    b'{"execute": "query-version", "arguments": {]}' + qv(10),
]


def run(d):
    out = []
    q = d.own_qmp()
    for m in RESYNC:
        rs = answers(q, m)
        ran = [r["id"] for r in rs if "return" in r]
        errors = [r["error"]["desc"] for r in rs if "error" in r]
        assert errors, (m, rs)
        assert all(e.startswith("JSON parse error") for e in errors), rs
        out.append((m.decode(), ran))
    for m in BAD_JSON:
        rs = answers(q, m)
        # QEMU may answer one bad message with several errors.
        assert rs, "no answer to %r" % m
        for r in rs:
            assert r["error"]["class"] == "GenericError", (m, r)
            assert r["error"]["desc"].startswith("JSON parse error"), (m, r)
            assert "id" not in r, (m, r)
        out.append((m.decode(errors="replace"), "JSON parse error"))
    for m, ident in GOOD_JSON:
        rs = answers(q, m)
        assert len(rs) == 1 and "return" in rs[0], (m, rs)
        assert rs[0]["id"] == ident, (m, rs[0]["id"], ident)
        out.append((m.decode(), "return"))
    for pieces, ident in SPLIT:
        for p in pieces:
            q.send_raw(p)
            time.sleep(0.05)
        rs = answers(q, b"")
        assert len(rs) == 1 and rs[0].get("id") == ident, (pieces, rs, ident)
        out.append(([p.decode() for p in pieces], "return"))
    for m in NOT_FOUND:
        rs = answers(q, m)
        assert len(rs) == 1, (m, rs)
        out.append((m.decode(), rs[0]))
    # A merge source whose name holds a NUL names no other bitmap.
    q.cmd("block-dirty-bitmap-add", node=NODE, name="src")
    q.cmd("block-dirty-bitmap-add", node=NODE, name="dst", disabled=True)
    d.write(0, b"x" * 65536)
    for sources in (["src\x00x"], [{"node": NODE, "name": "src\x00x"}]):
        r = q.try_cmd("block-dirty-bitmap-merge", node=NODE, target="dst",
                      bitmaps=sources)
        assert r[0] == "error" and r[1] == "GenericError", (sources, r)
    disk = [n for n in q.cmd("query-named-block-nodes")
            if n["node-name"] == NODE][0]
    counts = {b["name"]: b["count"] for b in disk["dirty-bitmaps"]}
    assert counts == {"src": 65536, "dst": 0}, counts
    q.cmd("block-dirty-bitmap-remove", node=NODE, name="src")
    q.cmd("block-dirty-bitmap-remove", node=NODE, name="dst")
    # The answers to queries are still strict JSON: no bitmap came in.
    q.send_raw(b'{"execute": "query-named-block-nodes"}\n')
    nodes = next_answer(q)["return"]
    disk = [n for n in nodes if n["node-name"] == NODE][0]
    assert "dirty-bitmaps" not in disk, disk
    q.close()
    d.reconnect()
    assert d.qmp.cmd("query-version")
    return out


results = {}
for cls in daemon_classes():
    with cls() as d:
        results[d.name] = run(d)
compare(results)
print("ok")
