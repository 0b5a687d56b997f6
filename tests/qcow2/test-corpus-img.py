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

"""Damaged qcow2 images (qcow2corpus.py) through nbdcbt-img info, check
and (for the images that cannot be opened) bitmap --add: each must be
refused with a message (never a crash or a sanitizer report), and the
file must be left exactly as it was."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qcow2corpus  # noqa: E402
from nbdcbttest import require, scratch_dir, sha256_file  # noqa: E402

require("qemu-img")
require("qemu-io")
IMG = os.path.join(os.environ["top_builddir"], "tools", "img", "nbdcbt-img")


failures = []


def run(args):
    p = subprocess.run([IMG] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60,
                       universal_newlines=True, errors="replace")
    return p.returncode, p.stdout, p.stderr



def expect(name, cond, what, out=""):
    if not cond:
        failures.append(name)
        print("FAIL %s: %s\n%s" % (name, what, out))


d = scratch_dir()
valid = qcow2corpus.make_valid(d)
rc, out, err = run(["info", "-f", "qcow2", valid])
expect("valid", rc == 0, "info failed on the valid image", err)
rc, out, err = run(["check", valid])
expect("valid", rc == 0, "check failed on the valid image", out + err)

for name, kind, make in qcow2corpus.CASES:
    path = make(d)
    before = sha256_file(path)

    rc, out, err = run(["info", "-f", "qcow2", path])
    expect(name, not qcow2corpus.crashed(rc, err), "info crashed (%d)" % rc, err)
    if name in ("backing-loop", "backing-self"):
        # info does not open the backing chain (qemu-img info neither:
        # it prints a looping image with exit 0).
        expect(name, rc == 0, "info failed (exit %d)" % rc, out + err)
    elif kind == "open":
        expect(name, rc == 1 and "nbdcbt-img:" in err,
               "info did not refuse it (exit %d)" % rc, out + err)
    print("%-32s info  exit %d  %s" % (name, rc, err.strip()[:110]))

    rc, out, err = run(["check", "-f", "qcow2", path])
    expect(name, not qcow2corpus.crashed(rc, err), "check crashed (%d)" % rc, err)
    expect(name, rc in (1, 2) and err.strip() != "",
           "check did not report it (exit %d)" % rc, out + err)
    print("%-32s check exit %d  %s" % (name, rc,
                                       err.strip().split("\n")[0][:110]))

    if kind == "open" and not name.startswith("backing-"):
        # A writable open must refuse it too, before writing anything.
        rc, out, err = run(["bitmap", "--add", "-f", "qcow2", path, "new"])
        expect(name, not qcow2corpus.crashed(rc, err),
               "bitmap --add crashed (%d)" % rc, err)
        expect(name, rc == 1 and "nbdcbt-img:" in err,
               "bitmap --add did not refuse it (exit %d)" % rc, out + err)

    expect(name, sha256_file(path) == before, "the file was modified")

if failures:
    print("%d failures: %s" % (len(failures), " ".join(failures)))
    sys.exit(1)
