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

"""The nbd plugin in front of qemu-nbd serving a qcow2 with a persistent
bitmap: qemu's dirty map and allocation depth come through nbdcbt as they
are; the dirty filter on top adds its own bitmap; the writes land in the
qcow2 (checked with qemu-img compare)."""
import os
import subprocess

from nbdcbttest import Server, extents, require, scratch_dir

require("qemu-img")
require("qemu-io")
MiB = 1024 * 1024
d = scratch_dir()
img = os.path.join(d, "disk.qcow2")
ref = os.path.join(d, "ref.raw")


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


run("qemu-img", "create", "-f", "qcow2", img, "16M")
run("qemu-io", "-f", "qcow2", "-c", "write -P 0x55 0 1M", img)
run("qemu-img", "bitmap", "--add", img, "q0")
run("qemu-io", "-f", "qcow2", "-c", "write -P 0x66 2M 64k",
    "-c", "write -P 0x67 10M 4k", img)
run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", img, ref)

# -t: stay up after a client leaves; -e: a connection per client.
with Server.qemu_nbd(["-t", "-e", "8", "-f", "qcow2", "-B", "q0", "-A",
                      img]) as up:
    with Server.nbdcbt(["--filter=dirty", "nbd", "uri=" + up.uri,
                        "bitmap=b0:4k"]) as srv:
        # Listing: the upstream's contexts beside the filter's.
        h = srv.connect(opt_mode=True)
        listed = set()
        h.opt_list_meta_context(lambda name: listed.add(name))
        assert {"base:allocation", "qemu:dirty-bitmap:b0",
                "qemu:dirty-bitmap:q0",
                "qemu:allocation-depth"} <= listed, listed
        h.opt_abort()

        ctxs = ["base:allocation", "qemu:dirty-bitmap:q0",
                "qemu:allocation-depth", "qemu:dirty-bitmap:b0"]
        h = srv.connect(ctxs)
        u = up.connect(ctxs[:3])
        for c in ctxs[:3]:
            assert h.can_meta_context(c), c
            assert extents(h, c) == extents(u, c), c
        # qemu's bitmap as qemu recorded it.
        assert [(o, n) for o, n, f in extents(h, "qemu:dirty-bitmap:q0")
                if f & 1] == [(2 * MiB, 65536), (10 * MiB, 65536)]
        assert [(o, n) for o, n, f in extents(h, "qemu:dirty-bitmap:b0")
                if f & 1] == []

        # Writes through nbdcbt: both bitmaps see them (q0 in qemu).
        h.pwrite(b"\x77" * 4096, 5 * MiB)
        h.zero(8192, 12 * MiB)
        h.flush()
        assert [(o, n) for o, n, f in extents(h, "qemu:dirty-bitmap:b0")
                if f & 1] == [(5 * MiB, 4096), (12 * MiB, 8192)]
        q0 = [(o, n) for o, n, f in extents(h, "qemu:dirty-bitmap:q0")
              if f & 1]
        assert q0 == [(2 * MiB, 65536), (5 * MiB, 65536),
                      (10 * MiB, 65536), (12 * MiB, 65536)], q0
        assert extents(h, "qemu:dirty-bitmap:q0") == \
            extents(u, "qemu:dirty-bitmap:q0")
        assert extents(h, "base:allocation") == \
            extents(u, "base:allocation")
        h.shutdown()
        u.shutdown()

# The data is in the qcow2, and qemu kept the bitmap.
with open(ref, "r+b") as f:
    f.seek(5 * MiB)
    f.write(b"\x77" * 4096)
    f.seek(12 * MiB)
    f.write(b"\0" * 8192)
run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", img, ref)
info = subprocess.run(["qemu-img", "info", "--output=json", img],
                      check=True, stdout=subprocess.PIPE, text=True).stdout
assert '"q0"' in info
run("qemu-img", "check", img)
