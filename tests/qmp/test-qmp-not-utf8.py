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

"""A bitmap whose name is not UTF-8 (qemu-img stores any bytes), side by
side with qemu-storage-daemon: every answer that names it is still UTF-8
JSON (each stray byte written as \\uFFFD, as QEMU writes it), so the
client can read the answer at all; the bitmap records writes like the
others; and commands that name it by that replaced name find nothing,
with the same error on both daemons."""

import os
import subprocess

from qmptest import NODE, compare, run_on_copies, scratch_dir

BAD = b"bad\xff\xfename"
base = os.path.join(scratch_dir(), "base.qcow2")
subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", base, "4M"])
subprocess.check_call([b"qemu-img", b"bitmap", b"--add", base.encode(), BAD])
subprocess.check_call(["qemu-img", "bitmap", "--add", base, "good"])
# A truncated sequence and an overlong "/": replaced as QEMU replaces
# them (compared below).
for other in (b"cut\xe2\x82", b"ov\xc0\xaf"):
    subprocess.check_call([b"qemu-img", b"bitmap", b"--add", base.encode(),
                           other])


def fields(d):
    # qmptest's reader decodes each line as UTF-8 JSON: a raw 0xff in
    # the answer fails right here.
    return sorted((n, b["count"], b["recording"], b["persistent"])
                  for n, b in d.nodes_bitmaps().items())


def run(d):
    out = [("before", fields(d))]
    d.write(0, b"x" * 65536)
    out.append(("after a write", fields(d)))
    shown = "bad\ufffd\ufffdname"
    for cmd in ("block-dirty-bitmap-clear", "block-dirty-bitmap-remove"):
        out.append((cmd, d.qmp.try_cmd(cmd, node=NODE, name=shown)))
    out.append(("at the end", fields(d)))
    return out


results = run_on_copies(base, run)
for name, steps in results.items():
    print("%s: %r" % (name, steps))
    assert steps[1][1] == [("bad\ufffd\ufffdname", 65536, True, True),
                           ("cut\ufffd", 65536, True, True),
                           ("good", 65536, True, True),
                           ("ov\ufffd", 65536, True, True)], steps[1]
compare(results)
print("ok")
