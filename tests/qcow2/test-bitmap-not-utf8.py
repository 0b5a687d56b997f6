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

"""A bitmap whose name is not UTF-8 (qemu-img writes any bytes) is kept
and tracked, but not offered as a metadata context: NBD strings are
UTF-8, and a client could not decode the name.  The other bitmaps are
offered and mark writes as usual; after the server stops, both bitmaps
are still in the image, consistent, the bad one with the write marked
too."""

import json
import os
import subprocess

from nbdcbttest import Server, extents, require, scratch_dir

require("qemu-img")
require("qemu-io")

BAD = b"bad\xff\xfename"
SIZE = 16 * 1024 * 1024
img = os.path.join(scratch_dir(), "disk.qcow2")


def run(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=60)


run(["qemu-img", "create", "-q", "-f", "qcow2", img, str(SIZE)])
run([b"qemu-img", b"bitmap", b"--add", img.encode(), BAD])
run(["qemu-img", "bitmap", "--add", img, "good"])

with Server.nbdcbt([img]) as srv:
    names = []
    h = srv.connect(opt_mode=True)
    # The count is the server's replies: a name the binding could not
    # decode never reaches the callback, but is counted.
    n = h.opt_list_meta_context(lambda name: names.append(name) or 0)
    h.opt_abort()
    assert n == len(names), (n, names)
    assert sorted(names) == ["base:allocation", "qemu:allocation-depth",
                             "qemu:dirty-bitmap:good"], names

    names = []
    h = srv.connect(opt_mode=True)
    h.add_meta_context("qemu:dirty-bitmap:")
    n = h.opt_list_meta_context(lambda name: names.append(name) or 0)
    h.opt_abort()
    assert n == len(names), (n, names)
    assert names == ["qemu:dirty-bitmap:good"], names

    h = srv.connect(["qemu:dirty-bitmap:good"])
    h.pwrite(b"\x01" * 65536, 1 << 20)
    got = extents(h, "qemu:dirty-bitmap:good")
    assert (1 << 20, 65536, 1) in got, got
    h.shutdown()

info = json.loads(subprocess.run(
    ["qemu-img", "info", "--output=json", img], check=True,
    stdout=subprocess.PIPE, timeout=60).stdout)
bms = {b["name"]: b for b in info["format-specific"]["data"]["bitmaps"]}
assert sorted(bms) == ["bad\ufffd\ufffdname", "good"], sorted(bms)
for name, bm in bms.items():
    assert "in-use" not in bm["flags"], (name, bm)

# The bad bitmap marked the write too: merge it into a fresh bitmap with
# a UTF-8 name and map that one.
run([b"qemu-img", b"bitmap", b"--add", img.encode(), b"copy"])
run([b"qemu-img", b"bitmap", b"--merge", BAD, img.encode(), b"copy"])
with Server.nbdcbt(["-r", img]) as srv:
    h = srv.connect(["qemu:dirty-bitmap:copy"])
    got = extents(h, "qemu:dirty-bitmap:copy")
    h.shutdown()
assert (1 << 20, 65536, 1) in got, got
print("ok")
