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

"""Persistent bitmaps and data interop with Debian's qemu, both ways.

(a) An image built by qemu-img and qemu-io (bitmaps of several
    granularities, a disabled one, a backing file, compressed, zero and
    discarded clusters) served read-only by `nbdcbt IMAGE` gives the data
    qemu-img compare calls equal and the dirty maps qemu-nbd -B gives, and
    leaves every file untouched.
(b) After a random workload through nbdcbt (writes, zeroes, trims spread
    over a 64 GiB image so that new L2 tables are allocated, and over an
    image with 512-byte clusters so that refcount blocks and the refcount
    table grow) and a clean stop (SIGTERM): qemu-img check finds nothing,
    qemu-img info lists the same bitmaps with the same flags, qemu-nbd -B
    exports the maps nbdcbt exported while running, the data read back
    through qemu-nbd is what nbdcbt served, and qemu-storage-daemon's
    x-debug-block-dirty-bitmap-sha256 equals nbdcbt-img info's sha256.
"""

import os
import random
import sys

import nbd
from nbdcbttest import NBDCBT, Server, require, scratch_dir, sha256_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from q2interop import (NBDCBT_IMG, PREFIX, Checker, bitmap_list,  # noqa: E402
                       contexts, maps, our_sha256, qemu_check, qemu_nbd_maps,
                       qsd_sha256, run)

for prog in ("qemu-img", "qemu-io", "qemu-nbd", "qemu-storage-daemon"):
    require(prog)
d = scratch_dir()

check = Checker()
KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024


def qemu_io(img, *cmds):
    argv = ["qemu-io", "-f", "qcow2"]
    for c in cmds:
        argv += ["-c", c]
    run(*(argv + [img]))


# --- (a) qemu builds, nbdcbt serves ------------------------------------

base = os.path.join(d, "base.qcow2")
top = os.path.join(d, "top.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", base, "32M")
run("qemu-img", "bitmap", "--add", base, "in-base")
qemu_io(base, "write -P 1 0 4M", "write -c -P 2 8M 1M", "write -P 3 20M 64k")
run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F",
    "qcow2", top)
run("qemu-img", "bitmap", "--add", top, "b64k")
run("qemu-img", "bitmap", "--add", "-g", "4k", top, "b4k")
run("qemu-img", "bitmap", "--add", "-g", "1M", top, "b1m")
run("qemu-img", "bitmap", "--add", "-g", "512", top, "b512")
run("qemu-img", "bitmap", "--add", top, "off")
qemu_io(top, "write -P 4 100k 10k", "write -c -P 5 4M 256k",
        "write -z 1M 128k", "discard 0 64k", "write -P 6 30M 3k")
run("qemu-img", "bitmap", "--disable", top, "off")
qemu_io(top, "write -P 7 12M 1M", "write -z 2M 4k", "write -P 8 31M 1")
names = [b[0] for b in bitmap_list(top)]

before = sha256_file(top), sha256_file(base)
expected = qemu_nbd_maps(top, names)
with Server.nbdcbt(["-r", top]) as srv:
    got_ctx = contexts(srv)
    got = maps(srv, names)
    p = run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", top, srv.uri,
            check=False)
check(all(PREFIX + n in got_ctx for n in names)
      and PREFIX + "in-base" not in got_ctx,
      "(a) nbdcbt IMAGE lists every bitmap of the image, none of its "
      "backing file's", got_ctx)
check(p.returncode == 0, "(a) qemu-img compare: data served by nbdcbt "
      "equals the image", p.stdout + p.stderr)
for n in names:
    check(got[n] == expected[n], "(a) map of %s equals qemu-nbd -B's" % n,
          "qemu-nbd %s\n      nbdcbt   %s" % (expected[n], got[n]))
check(before == (sha256_file(top), sha256_file(base)),
      "(a) nbdcbt -r leaves the image and its backing file untouched")
ours, theirs = our_sha256(top), qsd_sha256(top, names)
check(ours == theirs and len(ours) == len(names),
      "(a) nbdcbt-img info's sha256 equals qemu-storage-daemon's "
      "x-debug-block-dirty-bitmap-sha256 on qemu's image",
      "nbdcbt %s\n      qsd    %s" % (ours, theirs))


# --- (b) nbdcbt writes, qemu reads ---------------------------------------

def workload(h, size, seed, nops, maxlen):
    """Random writes, zeroes (trimming or not) and trims; returns the
    touched ranges."""
    rnd = random.Random(seed)
    touched = []
    for i in range(nops):
        length = rnd.randrange(1, maxlen // 512 + 1) * 512
        offset = rnd.randrange(0, (size - length) // 512 + 1) * 512
        if rnd.random() < 0.2:      # unaligned, partial sectors
            offset += rnd.randrange(1, 512)
            length = min(length - 512 + rnd.randrange(1, 512),
                         size - offset)
        kind = rnd.random()
        if kind < 0.6:
            fill = bytes([rnd.randrange(1, 256)])
            h.pwrite(fill * length, offset,
                     nbd.CMD_FLAG_FUA if rnd.random() < 0.1 else 0)
        elif kind < 0.85:
            flags = nbd.CMD_FLAG_NO_HOLE if rnd.random() < 0.5 else 0
            h.zero(length, offset, flags)
        else:
            h.trim(length, offset)
        touched.append((offset, length))
        if i % 50 == 49:
            h.flush()
    return touched


def read_ranges(h, ranges):
    return [h.pread(length, offset) for offset, length in ranges]


def covered(extent_list, offset, length):
    """Is [offset, offset+length) inside dirty extents?"""
    end = offset + length
    for (o, n, flags) in extent_list:
        if flags & 1 and o <= offset < o + n:
            if o + n >= end:
                return True
            offset = o + n
    return False


def round_trip(label, img, size, seed, nops, maxlen):
    bitmaps_before = bitmap_list(img)
    names = [b[0] for b in bitmaps_before]
    disabled = [b[0] for b in bitmaps_before if "auto" not in b[2]]
    maps_before = qemu_nbd_maps(img, names)

    with Server.nbdcbt([img]) as srv:
        # Nothing is written before a client may write (a startup refused
        # by a filter leaves the image as it was); then, before its first
        # request, every bitmap is in use, as after a QEMU rw open.
        idle = bitmap_list(img)
        check(idle == bitmaps_before,
              "(b) %s: nothing changes on disk while no client is "
              "connected" % label, idle)
        h = srv.connect([PREFIX + n for n in names])
        running = bitmap_list(img)
        check(all("in-use" in b[2] for b in running) and
              [b[0] for b in running] == names,
              "(b) %s: every bitmap is in-use on disk as soon as a client "
              "may write, as after a QEMU rw open" % label, running)
        touched = workload(h, size, seed, nops, maxlen)
        h.flush()
        served = read_ranges(h, touched)
        h.shutdown()
        running_maps = maps(srv, names)
        rc = srv.stop()
    check(rc == 0, "(b) %s: nbdcbt exits 0 on SIGTERM" % label)

    for n in names:
        if n in disabled:
            check(running_maps[n] == maps_before[n],
                  "(b) %s: disabled bitmap %s did not change" % (label, n))
        else:
            bad = [t for t in touched
                   if not covered(running_maps[n], t[0], t[1])]
            check(not bad, "(b) %s: recording bitmap %s covers every "
                  "write, zero and trim" % (label, n), bad[:5])

    code, result = qemu_check(img)
    check(code == 0 and not result.get("corruptions")
          and not result.get("leaks"),
          "(b) %s: qemu-img check: no corruption, no leak" % label, result)
    check(bitmap_list(img) == bitmaps_before,
          "(b) %s: qemu-img info lists the same bitmaps and flags after a "
          "clean stop" % label, bitmap_list(img))
    after = qemu_nbd_maps(img, names)
    for n in names:
        check(after[n] == running_maps[n],
              "(b) %s: qemu-nbd -B %s exports the map nbdcbt exported"
              % (label, n), "nbdcbt %s\n      qemu   %s"
              % (running_maps[n][:8], after[n][:8]))
    with Server.qemu_nbd(["-r", "-f", "qcow2", img]) as srv:
        h = srv.connect()
        back = read_ranges(h, touched)
        h.shutdown()
    check(back == served, "(b) %s: qemu-nbd reads back what nbdcbt served"
          % label)
    ours, theirs = our_sha256(img), qsd_sha256(img, names)
    check(ours == theirs and len(ours) == len(names),
          "(b) %s: x-debug-block-dirty-bitmap-sha256 equals nbdcbt-img "
          "info's sha256 for every bitmap" % label,
          "nbdcbt %s\n      qsd    %s" % (ours, theirs))


big = os.path.join(d, "big.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", big, "64G")
qemu_io(big, "write -P 9 0 1M", "write -c -P 10 40G 64k")
run("qemu-img", "bitmap", "--add", big, "full")
run("qemu-img", "bitmap", "--add", "-g", "2M", big, "coarse")
run("qemu-img", "bitmap", "--add", "-g", "4k", big, "fine")
run("qemu-img", "bitmap", "--add", big, "frozen")
qemu_io(big, "write -P 11 1G 1M")
run("qemu-img", "bitmap", "--disable", big, "frozen")
round_trip("64 GiB sparse", big, 64 * GiB, 1, 120, 256 * KiB)

small = os.path.join(d, "small-clusters.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512",
    small, "256M")
run("qemu-img", "bitmap", "--add", small, "b0")
run("qemu-img", "bitmap", "--add", "-g", "512", small, "b512")
round_trip("512-byte clusters", small, 256 * MiB, 2, 150, 256 * KiB)

# Nothing written: a clean stop, or a startup that fails after the image
# was opened, leaves the bitmaps as they were (consistent, no leak).
quiet = os.path.join(d, "quiet.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", quiet, "1G")
run("qemu-img", "bitmap", "--add", quiet, "q0")
run("qemu-img", "bitmap", "--add", "--disable", "-g", "1M", quiet, "q1")
qemu_io(quiet, "write 0 1M")
listed, maps0 = bitmap_list(quiet), qemu_nbd_maps(quiet, ["q0", "q1"])
with Server.nbdcbt([quiet]) as srv:
    h = srv.connect()
    h.pread(4096, 0)
    h.shutdown()
    rc = srv.stop()
check(rc == 0 and bitmap_list(quiet) == listed
      and qemu_nbd_maps(quiet, ["q0", "q1"]) == maps0,
      "no write: after a clean stop the bitmaps are as before",
      bitmap_list(quiet))
quiet_before = sha256_file(quiet)
p = run(NBDCBT, "-f", "-U", os.path.join(d, "never.sock"), "--filter=dirty",
        "qcow2", "file=" + quiet, "bitmap=q0:4k", check=False)
check(p.returncode != 0 and "granularity" in p.stderr,
      "a bitmap= contradicting the stored bitmap stops the server", p.stderr)
check(sha256_file(quiet) == quiet_before,
      "failed startup: not one byte of the image was written")
code, result = qemu_check(quiet)
check(bitmap_list(quiet) == listed and code == 0 and not result.get("leaks"),
      "failed startup: the bitmaps stay consistent, no leak",
      (bitmap_list(quiet), result))

# Without the dirty filter nothing records writes into the bitmaps: the
# plugin marks them in use (inconsistent) before the first write.
plain = os.path.join(d, "plain.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", plain, "16M")
run("qemu-img", "bitmap", "--add", plain, "b0")
with Server.nbdcbt(["qcow2", "file=" + plain]) as srv:
    h = srv.connect()
    check(bitmap_list(plain) == [("b0", 65536, ["auto"])],
          "plugin alone: nothing is marked before the first write")
    h.pwrite(b"\x42" * 4096, 0)
    h.flush()
    check(bitmap_list(plain) == [("b0", 65536, ["auto", "in-use"])],
          "plugin alone: the first write marks the bitmaps in use",
          bitmap_list(plain))
    h.shutdown()
code, result = qemu_check(plain)
check(code == 0 and bitmap_list(plain) == [("b0", 65536, ["auto", "in-use"])],
      "plugin alone: after a clean stop the bitmap stays in use, image clean",
      (code, result, bitmap_list(plain)))

if check.failures:
    print("%d failures" % len(check.failures))
    sys.exit(1)
