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

"""The qcow2 plugin against qemu-nbd on the same images: base:allocation
and qemu:allocation-depth over a backing chain, data after writes, zero
(with and without MAY_TRIM), trim, FUA and flush; qemu-img check is clean
afterwards and a read-only server leaves the file untouched."""

import os
import subprocess

import nbd
from nbdcbttest import (check, extents, finish, require, scratch_dir,
                        Server, sha256_file)

require("qemu-img")
require("qemu-io")
require("qemu-nbd")

d = scratch_dir()
MB = 1024 * 1024


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def maps(srv):
    h = srv.connect(["base:allocation", "qemu:allocation-depth"])
    a = extents(h, "base:allocation")
    b = extents(h, "qemu:allocation-depth")
    data = h.pread(h.get_size(), 0)
    h.shutdown()
    return a, b, data


# A three-layer chain: base (raw-ish data), mid, top (zero clusters too).
base = os.path.join(d, "base.qcow2")
mid = os.path.join(d, "mid.qcow2")
top = os.path.join(d, "top.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", base, "8M")
run("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 2M", "-c",
    "write -P 2 6M 64k", base)
run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F",
    "qcow2", mid)
run("qemu-io", "-f", "qcow2", "-c", "write -P 3 1M 512k", "-c",
    "write -z 6M 64k", mid)
run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F",
    "qcow2", top)
run("qemu-io", "-f", "qcow2", "-c", "write -P 4 100k 10k", "-c",
    "discard 0 64k", "-c", "write -z 4M 128k", top)

before = sha256_file(top), sha256_file(mid), sha256_file(base)
with Server.qemu_nbd(["-r", "-A", "-f", "qcow2", top]) as srv:
    qa, qd, qdata = maps(srv)
with Server.nbdcbt(["-r", "qcow2", "file=" + top]) as srv:
    na, nd, ndata = maps(srv)
check(qa == na, "base:allocation over a chain matches qemu-nbd")
if qa != na:
    print(" qemu-nbd", qa, "\n nbdcbt  ", na)
check(qd == nd, "qemu:allocation-depth matches qemu-nbd")
if qd != nd:
    print(" qemu-nbd", qd, "\n nbdcbt  ", nd)
check(qdata == ndata, "data through the chain matches qemu-nbd")
check(before == (sha256_file(top), sha256_file(mid), sha256_file(base)),
      "a read-only server leaves every image of the chain untouched")

# Writes through the plugin, then qemu-img reads the same.
img = os.path.join(d, "rw.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", img, "16M")
with Server.nbdcbt(["qcow2", "file=" + img]) as srv:
    h = srv.connect()
    check(h.can_multi_conn() and h.can_fua() and h.can_trim() and
          h.can_zero(), "flags: multi-conn, fua, trim, zero")
    h.pwrite(b"\x55" * MB, 0, nbd.CMD_FLAG_FUA)
    h.pwrite(b"\x66" * 1000, 5 * MB + 7)
    h.zero(MB, 2 * MB)                                   # keeps allocation
    h.pwrite(b"\x77" * MB, 8 * MB)
    h.zero(MB, 8 * MB, nbd.CMD_FLAG_NO_HOLE)
    h.pwrite(b"\x88" * MB, 10 * MB)
    h.trim(MB, 10 * MB)
    h.flush()
    h.shutdown()
p = subprocess.run(["qemu-img", "check", img], stdout=subprocess.PIPE,
                   universal_newlines=True)
check(p.returncode == 0, "qemu-img check clean after writes through nbdcbt")
exp = bytearray(16 * MB)
exp[0:MB] = b"\x55" * MB
exp[5 * MB + 7:5 * MB + 1007] = b"\x66" * 1000
raw = os.path.join(d, "rw.raw")
run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", img, raw)
with open(raw, "rb") as f:
    out = f.read()
check(out == bytes(exp), "qemu-img reads what was written through nbdcbt")

with Server.qemu_nbd(["-r", "-A", "-f", "qcow2", img]) as srv:
    qa, qd, _ = maps(srv)
with Server.nbdcbt(["-r", "qcow2", "file=" + img]) as srv:
    na, nd, _ = maps(srv)
check(qa == na and qd == nd, "maps after zero/trim match qemu-nbd")
if qa != na or qd != nd:
    print(" qemu-nbd", qa, qd, "\n nbdcbt  ", na, nd)

# A read-only server refuses writes.
with Server.nbdcbt(["-r", "qcow2", "file=" + img]) as srv:
    h = srv.connect()
    check(h.is_read_only(), "-r gives a read-only export")
    h.shutdown()

finish()
