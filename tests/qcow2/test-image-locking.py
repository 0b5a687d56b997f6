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

"""Image locking as QEMU does it (file-posix OFD locks), in both
directions, and the refusal of persistent bitmaps on a qcow2 v2 image.

- while nbdcbt serves an image read-write: qemu-img info fails with
  QEMU's 'Failed to get shared "write" lock' (works with -U), qemu-img
  bitmap --add fails, the backing file cannot be written either; after
  nbdcbt stops, qemu-img works and the image is clean;
- nbdcbt -r lets qemu-img info (and nbdcbt-img info) read but not write;
- while qemu-nbd serves an image read-write: nbdcbt refuses it with a
  clear message, nbdcbt-img info says why and works with -U, nbdcbt -r
  refuses it too (as qemu-img info does), nbdcbt-img create does not
  overwrite it;
- --filter=dirty with bitmap=x on a v2 image refuses to start with
  QEMU's message and leaves the file as it was.
"""

import os

from nbdcbttest import (NBDCBT, check, finish, require, run, scratch_dir,
                        Server, sha256_file)

require("qemu-img")
require("qemu-nbd")

IMG = os.path.join(os.environ["top_builddir"], "tools", "img", "nbdcbt-img")
d = scratch_dir()








base = os.path.join(d, "base.qcow2")
top = os.path.join(d, "top.qcow2")
run(["qemu-img", "create", "-q", "-f", "qcow2", base, "16M"])
run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2",
     top])
run(["qemu-img", "bitmap", "--add", top, "b0"])

# 1. nbdcbt serves read-write.
with Server.nbdcbt([top]) as srv:
    p = run(["qemu-img", "info", top])
    check(p.returncode != 0 and
          'Failed to get shared "write" lock' in p.stderr,
          "qemu-img info refused while nbdcbt serves read-write", p.stderr)
    p = run(["qemu-img", "info", "-U", top])
    check(p.returncode == 0, "qemu-img info -U works meanwhile", p.stderr)
    before = sha256_file(top)
    p = run(["qemu-img", "bitmap", "--add", top, "x"])
    check(p.returncode != 0 and 'Failed to get "write" lock' in p.stderr,
          "qemu-img bitmap --add refused meanwhile", p.stderr)
    check(sha256_file(top) == before, "... and the image was not touched")
    p = run(["qemu-io", "-f", "qcow2", "-c", "write 0 64k", base])
    check(p.returncode != 0 and "lock" in p.stderr,
          "the backing file cannot be written meanwhile", p.stdout + p.stderr)
    p = run(["qemu-img", "info", base])
    check(p.returncode == 0, "the backing file can be read meanwhile",
          p.stderr)
    p = run([IMG, "info", top])
    check(p.returncode == 1 and 'Failed to get shared "write" lock' in p.stderr
          and "-U" in p.stderr,
          "nbdcbt-img info says why and offers -U", p.stderr)
    p = run([IMG, "info", "-U", top])
    check(p.returncode == 0, "nbdcbt-img info -U works", p.stderr)
    p = run([IMG, "check", "--force-share", top])
    check(p.returncode == 0, "nbdcbt-img check --force-share works",
          p.stdout + p.stderr)
    p = run([IMG, "bitmap", "--add", top, "y"])
    check(p.returncode == 1 and "lock" in p.stderr,
          "nbdcbt-img bitmap --add refused", p.stderr)
    h = srv.connect()
    h.pwrite(b"\x55" * 65536, 0)
    h.flush()
    h.shutdown()
    rc = srv.stop()
check(rc == 0, "nbdcbt stopped cleanly")
p = run(["qemu-img", "check", top])
check(p.returncode == 0, "after nbdcbt stops: qemu-img check clean",
      p.stdout + p.stderr)
p = run(["qemu-img", "bitmap", "--add", top, "x"])
check(p.returncode == 0, "after nbdcbt stops: qemu-img bitmap --add works",
      p.stderr)

# 2. nbdcbt -r: readers may share, writers may not.
with Server.nbdcbt(["-r", top]):
    p = run(["qemu-img", "info", top])
    check(p.returncode == 0, "qemu-img info works while nbdcbt -r serves",
          p.stderr)
    p = run([IMG, "info", top])
    check(p.returncode == 0, "nbdcbt-img info works while nbdcbt -r serves",
          p.stderr)
    p = run(["qemu-img", "bitmap", "--add", top, "z"])
    check(p.returncode != 0 and 'Failed to get "write" lock' in p.stderr,
          "qemu-img bitmap --add refused while nbdcbt -r serves", p.stderr)

# 3. qemu-nbd serves read-write.
with Server.qemu_nbd(["-f", "qcow2", top]):
    before = sha256_file(top)
    p = run([NBDCBT, "-U", os.path.join(d, "sock"), top])
    check(p.returncode != 0 and 'Failed to get "write" lock' in p.stderr,
          "nbdcbt refuses an image qemu-nbd serves read-write", p.stderr)
    p = run([NBDCBT, "-r", "-U", os.path.join(d, "sock"), top])
    check(p.returncode != 0 and
          'Failed to get shared "write" lock' in p.stderr,
          "nbdcbt -r refuses it too (as qemu-img info)", p.stderr)
    p = run([IMG, "info", top])
    check(p.returncode == 1 and 'Failed to get shared "write" lock' in p.stderr,
          "nbdcbt-img info says why", p.stderr)
    p = run([IMG, "info", "--force-share", top])
    check(p.returncode == 0, "nbdcbt-img info --force-share works", p.stderr)
    p = run([IMG, "check", "-r", "leaks", "-U", top])
    check(p.returncode == 1, "check -U -r is refused", p.stderr)
    p = run([IMG, "create", "-f", "qcow2", top, "1M"])
    check(p.returncode == 1 and 'Failed to get "write" lock' in p.stderr,
          "nbdcbt-img create refuses to overwrite it", p.stderr)
    check(sha256_file(top) == before, "nbdcbt left the image alone")

# 4. A persistent bitmap on a v2 image: refused at startup.
v2 = os.path.join(d, "v2.qcow2")
run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", v2,
     "4M"])
before = sha256_file(v2)
p = run([NBDCBT, "-U", os.path.join(d, "sock2"), "--filter=dirty", "qcow2",
         "file=" + v2, "bitmap=x"])
check(p.returncode != 0 and
      "Cannot store dirty bitmaps in qcow2 v2 files" in p.stderr,
      "a bitmap on a v2 image is refused at startup", p.stderr)
check(sha256_file(v2) == before, "... and the v2 image was not touched")
p = run(["qemu-img", "bitmap", "--add", v2, "x"])
check(p.returncode != 0 and
      "Cannot store dirty bitmaps in qcow2 v2 files" in p.stderr,
      "(QEMU's message is the same)", p.stderr)
p = run([IMG, "bitmap", "--add", v2, "x"])
check(p.returncode != 0 and
      "Cannot store dirty bitmaps in qcow2 v2 files" in p.stderr,
      "nbdcbt-img bitmap --add on v2: QEMU's message", p.stderr)
# Serving a v2 image without bitmaps still works.
with Server.nbdcbt([v2]) as srv:
    h = srv.connect()
    h.pwrite(b"\x11" * 4096, 0)
    h.shutdown()

finish()
