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

"""transaction: all or nothing, side by side with qemu-storage-daemon.
A transaction that succeeds applies every action; one whose last action
fails (or that holds an abort action) leaves every bitmap exactly as it
was: the same fields, the same digests, the same dirty maps."""

from qmptest import NODE, compare, daemon_classes

K = 1024
M = 1024 * 1024


def act(type_, **data):
    return {"type": type_, "data": data}  # abort: data {}


def add(name, **kw):
    return act("block-dirty-bitmap-add", node=NODE, name=name, **kw)


def simple(op, name):
    return act("block-dirty-bitmap-" + op, node=NODE, name=name)


def merge(target, *sources):
    return act("block-dirty-bitmap-merge", node=NODE, target=target,
               bitmaps=list(sources))


def run(d):
    out = []
    q = d.qmp

    def tx(*actions, **props):
        args = {"actions": list(actions)}
        if props:
            args["properties"] = props
        # The wrapper's "data" is required even for abort.
        actions = [dict(a, data=a.get("data", {})) for a in actions]
        args["actions"] = actions
        out.append(("transaction", [a["type"] for a in actions],
                    q.try_cmd("transaction", **args)))

    def state():
        bms = d.nodes_bitmaps()
        s = [("fields", sorted((n, sorted(b.items()))
                               for n, b in bms.items()))]
        for n in sorted(bms):
            s.append(("sha256", n, d.sha256(n)))
        out.extend(s)
        return s

    tx(add("b0"), add("b1", granularity=512), add("b2", disabled=True))
    d.write(0, b"a" * 8192)
    d.write(M + 512, b"b" * 512)
    tx(merge("b2", "b1"), simple("clear", "b0"))
    d.write(2 * M, b"c" * 4096)
    before = state()
    maps = [d.dirty_map(n) for n in ("b0", "b1", "b2")]

    # Each of these fails at its last action: nothing may change.
    tx(simple("clear", "b1"), add("t1"), simple("disable", "b0"),
       merge("b2", "b0", "b1"), simple("enable", "b2"),
       add("b0"))
    tx(simple("remove", "b1"), add("t1", persistent=True),
       simple("clear", "b0"), act("abort"))
    tx(merge("b0", "b1"), simple("clear", "b2"),
       merge("b1", {"node": "no-such-node", "name": "b0"}))
    tx(simple("remove", "b0"), simple("clear", "b0"))
    tx(add("t2"), add("t2"))
    tx(simple("clear", "b1"), simple("remove", "nope"))
    tx(add("t3"), simple("clear", "t3"),
       act("block-dirty-bitmap-add", node="no-such-node", name="t3"))
    tx(simple("clear", "b1"), **{"completion-mode": "grouped"})
    after = state()
    out.append(("unchanged", before == after))
    out.append(("maps unchanged",
                maps == [d.dirty_map(n) for n in ("b0", "b1", "b2")]))

    # A successful one applies everything, in order.
    tx(add("t1", granularity=4096), merge("t1", "b1"),
       simple("clear", "b1"), simple("disable", "b0"),
       simple("remove", "b2"), merge("t1", "b0"))
    d.write(3 * M, b"d" * 4096)
    state()
    out.append(("map t1", d.dirty_map("t1")))
    tx()
    state()
    return out


results = {}
for cls in daemon_classes():
    with cls() as d:
        results[d.name] = run(d)
        steps = dict((s[0], s[1]) for s in results[d.name]
                     if s[0] in ("unchanged", "maps unchanged"))
        if not all(steps.values()):
            print("%s: a failed transaction changed something" % d.name)
            for s in results[d.name]:
                print(" ", s)
            raise SystemExit(1)
for name, steps in results.items():
    print("%s: %d steps" % (name, len(steps)))
compare(results)
