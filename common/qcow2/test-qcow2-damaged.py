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

# Damaged images through the library (qcow2-test-tool): every one must be
# refused with a clear message, without a crash, and left unchanged.
# The damage cases are tests/qcow2/qcow2corpus.py's (shared with the
# nbdcbt-img, server and fuzz tests), plus a few that only the library's
# own commands can tell apart.
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile

builddir = os.environ["top_builddir"]
sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "qcow2"))
import qcow2corpus  # noqa: E402

tool = os.path.join(builddir, "common/qcow2/qcow2-test-tool")
if shutil.which("qemu-img") is None or shutil.which("qemu-io") is None:
    sys.exit(77)

d = tempfile.mkdtemp(prefix="qcow2-damaged.")

def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def base(name, *opts):
    p = os.path.join(d, name)
    sh("qemu-img", "create", "-q", "-f", "qcow2", *opts, p, "8M")
    sh("qemu-io", "-f", "qcow2", "-c", "write 0 256k", "-c", "write 4M 64k", p)
    return p


def patch(p, off, fmt, val):
    with open(p, "r+b") as f:
        f.seek(off)
        f.write(struct.pack(fmt, val))


def read_u64(p, off):
    with open(p, "rb") as f:
        f.seek(off)
        return struct.unpack(">Q", f.read(8))[0]


def md5(p):
    with open(p, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


failures = 0


def tool_args(p, c, size):
    if c[0] == "read":
        return [tool, "read", p, p + ".out"]
    if c[0] == "random":
        model = p + ".model"
        with open(model, "wb") as f:
            f.truncate(size)
        return [tool, "random", p, model, "1", "20"]
    return [tool, "bitmaps", p] + list(c[1:])


def run_tool(desc, args):
    """Runs the tool: True if it refused with a clear message, False if
    it succeeded; a crash or a refusal without message is a failure."""
    global failures
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if r.returncode < 0 or r.returncode > 1 or "Sanitizer" in r.stderr:
        print("CRASH:", desc, args, r.returncode, r.stderr)
        failures += 1
    elif r.returncode == 1 and ("qcow2-test-tool:" not in r.stderr or
                                len(r.stderr) < 30):
        print("NO CLEAR MESSAGE:", desc, r.stderr)
        failures += 1
    elif r.returncode == 1:
        print("ok:", desc, args[1], "->", r.stderr.strip().splitlines()[-1])
        return True
    return False


def expect_refused(desc, p, commands=(("read",), ("random",)), size=8 << 20):
    global failures
    before = md5(p)
    for c in commands:
        args = tool_args(p, c, size)
        if not run_tool(desc, args):
            print("NOT REFUSED:", desc, args)
            failures += 1
    if md5(p) != before:
        print("CHANGED:", desc)
        failures += 1


# The shared corpus.  "open" damage is refused by every command.  "check"
# damage (in L1/L2/refcount/bitmap tables) is found when the table is
# used: by at least one command here, and a writable open must refuse
# anything that a write could make worse (or leave the image readable).
for name, kind, make in qcow2corpus.CASES:
    p = make(d)
    commands = (("read",), ("bitmaps", "dump", "b0"), ("random",))
    if kind == "open":
        expect_refused(name, p, commands, qcow2corpus.SIZE)
        continue
    before = md5(p)
    refused = [run_tool(name, tool_args(p, c, qcow2corpus.SIZE))
               for c in commands[:2]]
    if md5(p) != before:
        print("CHANGED:", name)
        failures += 1
    if run_tool(name, tool_args(p, commands[2], qcow2corpus.SIZE)):
        refused.append(True)
        if md5(p) != before:
            print("CHANGED by a refused writable open:", name)
            failures += 1
    elif name.startswith("bitmap-table-entry"):
        # New clusters would be allocated where the entry points, and
        # storing the bitmap would then overwrite or free guest data.
        print("WRITABLE OPEN NOT REFUSED:", name)
        failures += 1
    if not any(refused):
        print("NOT REFUSED by any command:", name)
        failures += 1

# Cases the corpus has not: the library's own view of them.


p = base("rtoff.qcow2"); patch(p, 48, ">Q", 12345)
expect_refused("refcount table unaligned", p)
p = base("corrupt.qcow2"); patch(p, 72, ">Q", 2)
expect_refused("corrupt bit (writable open)", p, (("random",),))
p = base("l2hdr.qcow2")
l2 = read_u64(p, read_u64(p, 40)) & 0x00fffffffffffe00
patch(p, l2 + 8, ">Q", 1 << 63 | 0)
patch(p, l2, ">Q", (1 << 63) | 0x0)
expect_refused("L2 entry COPIED without offset", p, (("read",),))
p = base("bmtsize.qcow2")
sh("qemu-img", "bitmap", "--add", p, "b0")
img = qcow2corpus.Image(p)
patch(p, img.entries[0]["at"] + 8, ">I", 2)
expect_refused("bitmap table size not exact", p,
               (("bitmaps", "dump", "b0"),))
m = os.path.join(d, "missing.qcow2")
sh("qemu-img", "create", "-q", "-f", "qcow2", m, "8M")
sh("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "nonexistent.qcow2",
   "-F", "qcow2", m)
expect_refused("missing backing file", m)

shutil.rmtree(d)
if failures:
    print(failures, "failures")
    sys.exit(1)
print("OK")
