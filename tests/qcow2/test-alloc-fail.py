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

"""An allocating write whose run of new clusters crosses into an L2
table that cannot be allocated fails with an error and leaks nothing.
The library's test hook NBDCBT_QCOW2_TEST_FAIL_NEW_L2=2 fails the second
new L2 table: the first write makes table 0, the second writes 1 MiB
across the 512 MiB boundary, so half of its sixteen new clusters are
pointed at from table 0 before table 1 fails.  The clusters never pointed
at used to stay counted (qemu-img check: 8 leaked clusters).  Then the
same range is written again without the hook, and the image must pass
qemu-img check and equal the model."""

import os

import nbd
from nbdcbttest import (NBDCBT, Server, check, check_qcow2_image, finish,
                        require, run, scratch_dir)

require("qemu-img")

MiB = 1 << 20
SIZE = 2048 * MiB
d = scratch_dir()
img = os.path.join(d, "fail.qcow2")
run(["qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=65536",
     img, str(SIZE)])
run(["qemu-img", "bitmap", "--add", img, "b0"])
model = bytearray(SIZE)


def serve(env=()):
    sd = os.path.join(d, "srv%d" % len(os.listdir(d)))
    os.mkdir(sd)
    sock, pid = os.path.join(sd, "sock"), os.path.join(sd, "pid")
    argv = ["env"] + list(env) + [NBDCBT, "-f", "-U", sock, "-P", pid, img]
    return Server(argv, sock, pid, check_exit=True)


a = b"\xaa" * 65536
b = b"\xbb" * MiB
cross = 512 * MiB - MiB // 2

with serve(["NBDCBT_QCOW2_TEST_FAIL_NEW_L2=2"]) as srv:
    h = srv.connect()
    h.pwrite(a, 0)
    model[0:len(a)] = a
    try:
        h.pwrite(b, cross)
        failed = None
    except nbd.Error as e:
        failed = e
    check(failed is not None and failed.errno == "EIO",
          "the write across the failing L2 table fails with EIO",
          str(failed))
    # The failed write may have landed in part; the rest of the disk
    # must be as before.
    check(h.pread(len(a), 0) == a, "the earlier write is intact")
    check(h.pread(MiB, 1024 * MiB) == bytes(MiB),
          "the disk elsewhere reads zeroes")
    h.shutdown()
    rc = srv.stop()
check(rc == 0, "clean stop after the failed write")
p = run(["qemu-img", "check", img])
check(p.returncode == 0,
      "qemu-img check after the failed write: no corruption, no leak",
      p.stdout + p.stderr)

with serve() as srv:
    h = srv.connect()
    h.pwrite(b, cross)
    model[cross:cross + len(b)] = b
    h.pwrite(a, SIZE - len(a))
    model[SIZE - len(a):] = a
    check(h.pread(len(b), cross) == b, "the range written again reads back")
    h.shutdown()
    rc = srv.stop()
check(rc == 0, "clean stop")
check_qcow2_image("after writing the range again", img, bytes(model))
finish()
