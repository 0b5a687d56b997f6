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

# One nbdcbt-backup run over many disks on many servers: four nbdcbt
# servers with qcow2 images (bitmap b0), two backed up by URI, two
# through backup sessions (--control), two at a time (--jobs 2), each
# into its own chain.  Then the server of one is killed and the chain of
# another is damaged: the run goes on with the others, prints its summary
# and exits 1; the good chains verify and restore the disks exactly, the
# good session ends with success and only the failed disk's session ends
# as failed.
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests",
                                "sessions"))
from nbdcbttest import require, scratch_dir   # noqa: E402
from sessions import Disk                       # noqa: E402

require("qemu-img")
out = os.path.join(scratch_dir(), "backups")
disks = {n: Disk(blocks=128, nodes=(n,), fmt="qcow2")
         for n in ("a", "bee", "c", "d")}


def run(kind, *extra, expect=0):
    argv = ["nbdcbt-backup", kind, "-o", out, "--bitmap", "b0", "-q",
            "--jobs", "2",
            # The export name names the chain: a.
            disks["a"].uri("a"),
            "bee=" + disks["bee"].uri("bee"),
            "c=" + disks["c"].uri("c"), "--control", "c=" + disks["c"].ctl,
            "d=" + disks["d"].uri("d"), "--control", "d=" + disks["d"].ctl,
            "--node", "d=d"] + list(extra)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    print(p.stdout, p.stderr, sep="")
    assert p.returncode == expect, (argv, p.returncode)
    return p


def summary(p):
    """DISK -> (RESULT, TYPE) from the summary table."""
    lines = p.stdout.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("DISK "))
    rows = {}
    for line in lines[start + 1:start + 1 + len(disks)]:
        f = line.split()
        rows[f[0]] = (f[1], f[2])
    return rows


def content(name):
    h = disks[name].connect(name)
    data = h.pread(h.get_size(), 0)
    h.shutdown()
    return data


def check_chain(name, points):
    chain = os.path.join(out, name)
    subprocess.run(["nbdcbt-backup", "verify", "-q", chain], check=True)
    for i, data in enumerate(points):
        r = os.path.join(scratch_dir(), "restored.raw")
        subprocess.run(["nbdcbt-backup", "restore", chain, "--until", str(i),
                        "-o", r, "-q"], check=True)
        with open(r, "rb") as f:
            assert f.read() == data, "%s: point %d differs" % (name, i)


def write(name, seed):
    h = disks[name].connect(name)
    for k in range(4):
        h.pwrite(bytes([seed + k]) * 70000, (seed * 977 + k * 300007) %
                 (h.get_size() - 70000))
    h.flush()
    h.shutdown()


# Every disk: a full backup.
points = {n: [content(n)] for n in disks}
p = run("full")
assert summary(p) == {n: ("ok", "full") for n in disks}, summary(p)
assert "all 4 disks backed up" in p.stdout
for n in disks:
    check_chain(n, points[n])

# Changes everywhere; then bee's server dies and d's chain is damaged.
for i, n in enumerate(disks):
    write(n, 10 * i + 1)
    points[n].append(content(n))
disks["bee"].stop(signal.SIGKILL)
with open(os.path.join(out, "d", "manifest.json"), "a") as f:
    f.write("garbage")
qc = disks["c"].qmp()
qd = disks["d"].qmp()
p = run("inc", expect=1)
rows = summary(p)
assert rows["a"] == ("ok", "incremental"), rows
assert rows["c"] == ("ok", "incremental"), rows
assert rows["bee"] == ("FAILED", "-"), rows
assert rows["d"] == ("FAILED", "-"), rows
assert "2 of 4 disks FAILED" in p.stdout
# Each failure is told with its disk's name.
assert "nbdcbt-backup: bee: " in p.stderr, p.stderr
assert "nbdcbt-backup: d: " in p.stderr and "damaged" in p.stderr, p.stderr

# c's session ended with success (its bitmap's frozen bits dropped), d's
# as failed (reclaimed, so the next incremental still copies them).
e = qc.wait_event("BACKUP_SESSION_COMPLETED")
assert e["data"]["success"] is True, e
e = qd.wait_event("BACKUP_SESSION_COMPLETED")
assert e["data"]["success"] is False, e
assert e["data"]["bitmap-action"] == "reclaim", e
assert not qc.cmd("query-backups") and not qd.cmd("query-backups")

for n in ("a", "c"):
    check_chain(n, points[n])
# bee's chain is as the first run left it.
check_chain("bee", points["bee"][:1])

# Bad command lines: refused before anything runs.
def refused(msg, *argv):
    p = subprocess.run(["nbdcbt-backup"] + list(argv),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert p.returncode == 1 and msg in p.stderr, (argv, p.stderr)


u = disks["a"].uri("a")
refused("there is no disk named 'x'", "full", "-o", out, "a=" + u, "c=" + u,
        "--control", "x=/nowhere")
refused("two disks are named 'a'", "full", "-o", out, u, "a=" + u)
refused("name this disk (NAME=URI): its export name is empty", "full",
        "-o", out, "nbd+unix:///?socket=/x", u)
refused("--jobs: '0' is not a number between 1 and 64", "full", "-o", out,
        u, "--jobs", "0")
refused("say which one: --control NAME=SOCKET", "full", "-o", out, u,
        "c=" + u, "--control", "/x")
refused("--node x=y: a node is backed up through a session", "full", "-o",
        out, u, "x=" + u, "--node", "x=y")
