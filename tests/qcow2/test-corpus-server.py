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

"""Damaged qcow2 images (qcow2corpus.py) served by nbdcbt's qcow2 plugin.
Images the library refuses must stop the server at startup with a
message; images whose damage lies in L1/L2/refcount/bitmap tables are
served read-only and every read and block status either works or fails
with an NBD error, never a crash; the files stay untouched."""

import os
import subprocess
import sys
import tempfile
import time

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qcow2corpus  # noqa: E402
from nbdcbttest import (NBDCBT, Server, require, scratch_dir,  # noqa: E402
                        sha256_file)

require("qemu-img")
require("qemu-io")
failures = []
IMG = os.path.join(os.environ["top_builddir"], "tools", "img", "nbdcbt-img")



def fail(name, what):
    failures.append(name)
    print("FAIL %s: %s" % (name, what))


def refused(name, path):
    sock = os.path.join(tempfile.mkdtemp(dir=d), "sock")
    p = subprocess.Popen([NBDCBT, "-f", "-U", sock, "qcow2", "file=" + path],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, errors="replace")
    end = time.time() + 30
    while p.poll() is None and time.time() < end:
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    if p.poll() is None:
        p.kill()
        p.communicate()
        fail(name, "the server started on a damaged image")
        return
    err = p.communicate()[1]
    if p.returncode <= 0 or qcow2corpus.crashed(p.returncode, err) or \
       err.strip() == "":
        fail(name, "exit %d, stderr: %s" % (p.returncode, err))
    else:
        print("%-32s refused: %s" % (name, err.strip()[:100]))


def served(name, path):
    """Damage the library may find at startup (then: refused) or only
    when the tables are used (then: served, requests may fail)."""
    sock = os.path.join(tempfile.mkdtemp(dir=d), "sock")
    pidf = os.path.join(os.path.dirname(sock), "pid")
    p = subprocess.Popen([NBDCBT, "-f", "-r", "-U", sock, "-P", pidf,
                          "qcow2", "file=" + path], stderr=subprocess.PIPE,
                         universal_newlines=True, errors="replace")
    end = time.time() + 30
    while p.poll() is None and time.time() < end and \
            not os.path.exists(pidf):
        time.sleep(0.05)
    if p.poll() is not None:
        err = p.communicate()[1]
        if p.returncode <= 0 or qcow2corpus.crashed(p.returncode, err) or \
           err.strip() == "":
            fail(name, "exit %d, stderr: %s" % (p.returncode, err))
        else:
            print("%-32s refused: %s" % (name, err.strip()[:100]))
        return
    p.kill()
    p.communicate()
    with Server.nbdcbt(["-r", "qcow2", "file=" + path]) as srv:
        errors = 0
        h = srv.connect(["base:allocation", "qemu:allocation-depth"])
        size = h.get_size()
        for off in range(0, size, 256 * 1024):
            n = min(256 * 1024, size - off)
            try:
                h.pread(n, off)
            except nbd.Error:
                errors += 1
            for ctx in ("base:allocation", "qemu:allocation-depth"):
                try:
                    h.block_status(n, off, lambda *a: 0)
                except nbd.Error:
                    errors += 1
        h.shutdown()
        # Still alive and serving.
        h = srv.connect()
        if h.get_size() != size:
            fail(name, "size changed")
        h.shutdown()
        rc = srv.stop()
    if rc != 0:
        fail(name, "server exit status %d after serving" % rc)
    else:
        print("%-32s served read-only, %d requests failed cleanly"
              % (name, errors))


d = scratch_dir()
valid = qcow2corpus.make_valid(d)
served("valid", valid)
for name, kind, make in qcow2corpus.CASES:
    path = make(d)
    before = sha256_file(path)
    if kind == "open":
        refused(name, path)
    else:
        served(name, path)
    if sha256_file(path) != before:
        fail(name, "the file was modified")

if failures:
    print("%d failures: %s" % (len(failures), " ".join(failures)))
    sys.exit(1)
