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

"""kill -9 of nbdcbt while a client writes to a qcow2 image with bitmaps.

Each round starts `nbdcbt IMAGE`, writes continuously from a libnbd
client (16 requests in flight: writes, zeroes, trims, flushes spread over
the image) and kills the server with SIGKILL after a different delay.
Then qemu-img check must find no corruption (exit 0, or 3 = leaked
clusters only; never 2) and qemu-img info must show every bitmap with
the in-use flag, as QEMU leaves a crashed image's bitmaps.

Two more rounds send SIGTERM and then SIGKILL 2 ms and 20 ms later,
while the bitmaps are being stored: no corruption, and the bitmaps are
either all still in use or all stored cleanly.

Afterwards nbdcbt serves the crashed image again: its intent record
(docs/persistence.md) recovers the bitmaps, which are exported and, after
a clean stop, stored with clean flags.  A copy that QEMU opened
read-write in between (which invalidates the record) keeps them
inconsistent: listed by nbdcbt-img info without digest or count, not
exported, kept as they are across a clean stop; nbdcbt-img bitmap
--remove removes them, and a new bitmap added then is exported.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

from nbdcbttest import NBDCBT, Server, require, scratch_dir

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from q2interop import (NBDCBT_IMG, PREFIX, Checker, bitmap_list,  # noqa: E402
                       contexts, info, qemu_check, run)

for prog in ("qemu-img", "qemu-io"):
    require(prog)
d = scratch_dir()

check = Checker()
MiB = 1024 * 1024
SIZE = 4 * 1024 * MiB

# The writer: runs until the server dies under it.
WRITER = textwrap.dedent("""
    import random, sys, nbd
    h = nbd.NBD()
    h.connect_unix(sys.argv[1])
    rnd = random.Random(int(sys.argv[2]))
    size = h.get_size()
    buf = nbd.Buffer.from_bytearray(bytearray(b"\\x5a" * 262144))
    print("connected", flush=True)
    try:
        while True:
            while h.aio_in_flight() < 16:
                n = rnd.randrange(1, 513) * 512
                off = rnd.randrange(0, (size - n) // 512) * 512
                k = rnd.random()
                if k < 0.7:
                    h.aio_pwrite(nbd.Buffer.from_bytearray(
                        bytearray(buf.to_bytearray()[:n])), off)
                elif k < 0.85:
                    h.aio_zero(n, off)
                elif k < 0.97:
                    h.aio_trim(n, off)
                else:
                    h.aio_flush()
            h.poll(-1)
            while h.aio_peek_command_completed() > 0:
                h.aio_command_completed(h.aio_peek_command_completed())
    except nbd.Error:
        pass
""")


def crash_round(img, seed, delay, term_first=0):
    sock = os.path.join(d, "crash.sock")
    pidf = os.path.join(d, "crash.pid")
    for f in (sock, pidf):
        if os.path.exists(f):
            os.unlink(f)
    server = subprocess.Popen([NBDCBT, "-f", "-U", sock, "-P", pidf, img])
    end = time.time() + 30
    while not os.path.exists(pidf):
        if server.poll() is not None or time.time() > end:
            raise RuntimeError("nbdcbt did not start")
        time.sleep(0.02)
    writer = subprocess.Popen(["/usr/bin/python3", "-c", WRITER, sock,
                               str(seed)], stdout=subprocess.PIPE,
                              universal_newlines=True)
    try:
        writer.stdout.readline()            # connected
        time.sleep(delay)
        if term_first:
            # A clean stop (storing the bitmaps) cut short.
            server.send_signal(signal.SIGTERM)
            time.sleep(term_first)
        server.send_signal(signal.SIGKILL)
        server.wait()
        writer.wait(30)
    finally:
        for p in (server, writer):
            if p.poll() is None:
                p.kill()
                p.wait()

    code, result = qemu_check(img)
    check(code in (0, 3) and not result.get("corruptions"),
          "kill -9 after %.2f s: qemu-img check finds no corruption "
          "(exit %d, %s leaked clusters)" % (delay, code,
                                             result.get("leaks", 0)),
          result)
    flags = bitmap_list(img)
    if term_first:
        # Killed during the clean stop: either still all in use, or stored.
        check(flags and (all("in-use" in b[2] for b in flags) or
                         [(b[0], b[2]) for b in flags] == ORIGINAL),
              "SIGTERM then kill -9 %.3f s later: every bitmap in-use, or "
              "all stored cleanly (here: %s)"
              % (term_first, "in use" if "in-use" in flags[0][2]
                 else "stored"), flags)
        return
    check(flags and all("in-use" in b[2] for b in flags),
          "kill -9 after %.2f s: every bitmap is flagged in-use" % delay,
          flags)


names = ["b0", "b4k", "b1m", "off"]
ORIGINAL = [("b0", ["auto"]), ("b4k", ["auto"]), ("b1m", ["auto"]),
            ("off", [])]
for rnd, delay, term_first in ((3, 0.3, 0.002), (4, 0.3, 0.02)):
    img = os.path.join(d, "term%d.qcow2" % rnd)
    run("qemu-img", "create", "-q", "-f", "qcow2", img, str(SIZE))
    for n, g, extra in (("b0", "64k", []), ("b4k", "4k", []),
                        ("b1m", "1M", []), ("off", "64k", ["--disable"])):
        run(*(["qemu-img", "bitmap", "--add", "-g", g] + extra + [img, n]))
    crash_round(img, rnd, delay, term_first)

for rnd, delay in enumerate((0.1, 0.4, 0.9)):
    img = os.path.join(d, "crash%d.qcow2" % rnd)
    run("qemu-img", "create", "-q", "-f", "qcow2", img, str(SIZE))
    run("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 8M", img)
    run("qemu-img", "bitmap", "--add", img, "b0")
    run("qemu-img", "bitmap", "--add", "-g", "4k", img, "b4k")
    run("qemu-img", "bitmap", "--add", "-g", "1M", img, "b1m")
    run("qemu-img", "bitmap", "--add", "--disable", img, "off")
    crash_round(img, rnd, delay)

# Serve the last crashed image again: recovered through the record.
img = os.path.join(d, "crash2.qcow2")
img_q = os.path.join(d, "crash2-qemu.qcow2")
run("cp", img, img_q)
with Server.nbdcbt([img]) as srv:
    ctx = contexts(srv)
    check(all(PREFIX + n in ctx for n in names),
          "after a crash nbdcbt recovers and exports every bitmap", ctx)
    rc = srv.stop()
check(rc == 0, "nbdcbt serves a recovered image and stops cleanly")
check(all("in-use" not in b[2] for b in bitmap_list(img)),
      "after a clean stop QEMU sees clean flags", bitmap_list(img))

# The copy QEMU opened read-write meanwhile: the record no longer counts.
run("qemu-io", "-f", "qcow2", "-c", "read 0 512", img_q)
img = img_q
listed = bitmap_list(img)
with Server.nbdcbt([img]) as srv:
    ctx = contexts(srv)
    check(not any(c.startswith(PREFIX) for c in ctx),
          "after a crash no in-use bitmap is exported", ctx)
    h = srv.connect()
    h.pwrite(b"\x11" * MiB, 64 * MiB)
    h.flush()
    h.shutdown()
    rc = srv.stop()
check(rc == 0, "nbdcbt serves a crashed image and stops cleanly")
check(bitmap_list(img) == listed,
      "inconsistent bitmaps are kept as they are across a clean stop",
      bitmap_list(img))
ours = run(NBDCBT_IMG, "info", "--output=json", img).stdout
import json  # noqa: E402
ours = json.loads(ours)["format-specific"]["data"].get("bitmaps", [])
check(sorted(b["name"] for b in ours) == sorted(names)
      and all("in-use" in b["flags"] and "sha256" not in b
              and "count" not in b for b in ours),
      "nbdcbt-img info lists them as in-use, with no digest", ours)
for n in names:
    p = run(NBDCBT_IMG, "bitmap", "--remove", img, n, check=False)
    check(p.returncode == 0, "nbdcbt-img bitmap --remove %s" % n, p.stderr)
check(bitmap_list(img) == [], "no bitmap left after removing them all",
      bitmap_list(img))
run(NBDCBT_IMG, "bitmap", "--add", img, "fresh")
code, result = qemu_check(img)
check(code in (0, 3) and not result.get("corruptions"),
      "qemu-img check after the removals: no corruption", result)
with Server.nbdcbt(["-r", img]) as srv:
    ctx = contexts(srv)
check(PREFIX + "fresh" in ctx, "a bitmap added afterwards is exported", ctx)
check(info(img)["format-specific"]["data"]["bitmaps"][0]["flags"]
      == ["auto"], "and a read-only server leaves it clean")

if check.failures:
    print("%d failures" % len(check.failures))
    sys.exit(1)
