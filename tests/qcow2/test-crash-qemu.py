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

"""QEMU between an nbdcbt crash and the next nbdcbt open.

nbdcbt's intent record (docs/persistence.md) is bound to the image by
autoclear bit 56, which QEMU clears at every read-write open, by the
image size, and by the names of the bitmaps it does not cover; it is
applied only to bitmaps that were in use at open.  Each case crashes
nbdcbt (kill -9) after writes A into bitmaps b0 and b1, lets qemu-img /
qemu-io / qemu-nbd (7.2) or nbdcbt-img act, and opens the image with
nbdcbt again; a bitmap nbdcbt exports must hold every write made since
it was created or last cleared (A for a bitmap that existed then, QEMU's
writes B for one QEMU recreated), never a wrong "clean":

- QEMU read-only (qemu-img info/check, qemu-nbd -r): the record stays
  valid, b0 and b1 are recovered with A;
- qemu-img bitmap --remove b0 + --add b0 (same name): b0 is QEMU's new
  bitmap (clean: created after A) and b1, still in use without a valid
  record, is inconsistent (not exported);
- the same, then qemu-io writes B: b0 holds B (QEMU recorded it);
- qemu-img bitmap --clear b0: refused by QEMU (in use); then qemu-io
  writes B: neither bitmap is exported (the record went with the
  read-write open), and nbdcbt-img bitmap --remove then works;
- qemu-img resize: refused by QEMU (in-use bitmaps), but its read-write
  open invalidated the record: neither bitmap is exported;
- nbdcbt-img bitmap --remove b0 + --add b0 (keeps the record): the new
  b0 is clean and b1 is still recovered with A;
- nbdcbt-img bitmap --clear b1 (it knows the record, so unlike QEMU it may
  clear a recoverable bitmap): b1 is clean as asked, b0 still recovered.
"""

import os
import subprocess
import sys
import time

from nbdcbttest import NBDCBT, Server, require, scratch_dir

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from q2interop import (NBDCBT_IMG, PREFIX, Checker, bitmap_list,  # noqa: E402
                       contexts, maps, run)

for prog in ("qemu-img", "qemu-io", "qemu-nbd"):
    require(prog)
d = scratch_dir()
check = Checker()
MiB = 1024 * 1024
SIZE = 1024 * MiB
A = [(0, 64 * 1024), (300 * MiB, 4096), (700 * MiB + 8192, MiB)]
B = [(512 * MiB, 65536)]


def crashed_image(name):
    """An image whose nbdcbt was killed after writes A into b0 and b1."""
    img = os.path.join(d, name + ".qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", img, str(SIZE))
    run("qemu-img", "bitmap", "--add", img, "b0")
    run("qemu-img", "bitmap", "--add", "-g", "4k", img, "b1")
    sock = os.path.join(d, name + ".sock")
    pidf = os.path.join(d, name + ".pid")
    server = subprocess.Popen([NBDCBT, "-f", "-U", sock, "-P", pidf, img])
    try:
        end = time.time() + 30
        while not os.path.exists(pidf):
            if server.poll() is not None or time.time() > end:
                raise RuntimeError("nbdcbt did not start")
            time.sleep(0.02)
        import nbd
        h = nbd.NBD()
        h.connect_unix(sock)
        for off, n in A:
            h.pwrite(b"\x5a" * n, off)
        h.flush()
        server.kill()
        server.wait()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    flags = bitmap_list(img)
    assert all("in-use" in b[2] for b in flags), flags
    return img


def covers(ext, writes):
    dirty = [(o, o + n) for o, n, f in ext if f & 1]
    return all(any(a <= o and o + n <= b for a, b in dirty)
               for o, n in writes)


def clean(ext):
    return not any(f & 1 for o, n, f in ext)


def served(img, what):
    """{bitmap: extents} of the bitmaps nbdcbt exports after a restart."""
    with Server.nbdcbt([img]) as srv:
        ctx = contexts(srv)
        names = [c[len(PREFIX):] for c in ctx if c.startswith(PREFIX)]
        got = maps(srv, names)
        rc = srv.stop()
    check(rc == 0, "%s: nbdcbt serves the image and stops cleanly" % what)
    return got


# QEMU reads only: the record stays valid.
img = crashed_image("ro")
run("qemu-img", "info", img)
run("qemu-img", "check", img, check=False)
with Server.qemu_nbd(["-r", "-f", "qcow2", img]) as srv:
    contexts(srv)
got = served(img, "read-only QEMU")
check(set(got) == {"b0", "b1"} and covers(got["b0"], A)
      and covers(got["b1"], A),
      "after read-only QEMU opens both bitmaps are recovered with A",
      got)

# QEMU removes b0 and recreates one with the same name.
img = crashed_image("recreate")
run("qemu-img", "bitmap", "--remove", img, "b0")
run("qemu-img", "bitmap", "--add", img, "b0")
got = served(img, "recreated b0")
check("b1" not in got,
      "recreated b0: b1 (in use, record invalidated) is not exported",
      got)
check("b0" in got and clean(got["b0"]),
      "recreated b0: the new b0 is exported, clean (created after A)", got)

# ... and QEMU writes into the image with the new b0 recording.
img = crashed_image("recreate-write")
run("qemu-img", "bitmap", "--remove", img, "b0")
run("qemu-img", "bitmap", "--add", img, "b0")
run("qemu-io", "-f", "qcow2", "-c",
    "write -P 7 %d %d" % (B[0][0], B[0][1]), img)
got = served(img, "recreated b0, QEMU writes")
check("b1" not in got, "recreated b0 + QEMU write: b1 is not exported", got)
check("b0" in got and covers(got["b0"], B),
      "recreated b0 + QEMU write: b0 holds QEMU's write B", got)

# QEMU cannot clear an in-use bitmap; its write invalidates the record.
img = crashed_image("clear-write")
p = run("qemu-img", "bitmap", "--clear", img, "b0", check=False)
check(p.returncode != 0 and "inconsistent" in p.stderr,
      "qemu-img bitmap --clear of the crashed b0 is refused", p.stderr)
run("qemu-io", "-f", "qcow2", "-c",
    "write -P 7 %d %d" % (B[0][0], B[0][1]), img)
got = served(img, "QEMU write")
check(got == {}, "after a QEMU write no bitmap is exported", got)
p = run(NBDCBT_IMG, "bitmap", "--remove", img, "b0", check=False)
check(p.returncode == 0, "nbdcbt-img bitmap --remove of the inconsistent b0",
      p.stderr)

# QEMU resizes the image.
img = crashed_image("resize")
p = run("qemu-img", "resize", "-f", "qcow2", img, str(SIZE + 64 * MiB),
        check=False)
check(p.returncode != 0 and "inconsistent" in p.stderr,
      "qemu-img resize of the crashed image is refused", p.stderr)
got = served(img, "resize refused")
check(got == {}, "after the refused resize (a read-write open) no bitmap "
      "is exported", got)

# nbdcbt-img recreates b0: the record stays valid for b1.
img = crashed_image("ours")
run(NBDCBT_IMG, "bitmap", "--remove", img, "b0")
run(NBDCBT_IMG, "bitmap", "--add", img, "b0")
got = served(img, "nbdcbt-img recreated b0")
check("b0" in got and clean(got["b0"]),
      "nbdcbt-img recreated b0: exported, clean", got)
check("b1" in got and covers(got["b1"], A),
      "nbdcbt-img recreated b0: b1 is still recovered with A", got)

# nbdcbt-img knows the record: it may clear a recoverable b1 (the user's
# clear: clean is right for it), and b0 is still recovered.
img = crashed_image("ours-clear")
run(NBDCBT_IMG, "bitmap", "--clear", img, "b1")
got = served(img, "nbdcbt-img cleared b1")
check("b1" in got and clean(got["b1"]),
      "nbdcbt-img cleared b1: exported, clean", got)
check("b0" in got and covers(got["b0"], A),
      "nbdcbt-img cleared b1: b0 is still recovered with A", got)

if check.failures:
    print("%d failures" % len(check.failures))
    sys.exit(1)
