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

"""Helpers shared by the qcow2 interop and crash tests: running the qemu
tools, reading dirty maps from nbdcbt and qemu-nbd, QMP against
qemu-storage-daemon."""

import json
import os
import socket
import subprocess
import tempfile
import time

from nbdcbttest import Server, extents, scratch_dir

TOP = os.environ.get("top_builddir", "")
NBDCBT_IMG = os.path.join(TOP, "tools", "img", "nbdcbt-img")
PREFIX = "qemu:dirty-bitmap:"


class Checker:
    """Collects failures; each check prints ok/FAIL."""

    def __init__(self):
        self.failures = []

    def __call__(self, cond, what, detail=None):
        if cond:
            print("ok  ", what)
        else:
            self.failures.append(what)
            print("FAIL:", what)
            if detail is not None:
                print("     ", detail)
        return cond


def run(*argv, check=True, timeout=120):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(argv),
                           p.returncode, p.stdout, p.stderr))
    return p


def info(img):
    return json.loads(run("qemu-img", "info", "-U", "--output=json",
                          img).stdout)


def bitmap_list(img):
    """[(name, granularity, sorted flags)] as qemu-img info reports them."""
    data = info(img)["format-specific"]["data"]
    return [(b["name"], b["granularity"], sorted(b["flags"]))
            for b in data.get("bitmaps", [])]


def qemu_check(img):
    """(exit code, parsed JSON) of qemu-img check."""
    p = run("qemu-img", "check", "-U", "--output=json", img, check=False)
    try:
        return p.returncode, json.loads(p.stdout)
    except ValueError:
        return p.returncode, {"stdout": p.stdout, "stderr": p.stderr}


def contexts(srv):
    """The metadata contexts a server lists."""
    h = srv.connect(opt_mode=True)
    h.add_meta_context("qemu:")
    got = []
    h.opt_list_meta_context(lambda name: got.append(name) or 0)
    h.opt_abort()
    return sorted(got)


def maps(srv, names):
    """{name: extents of qemu:dirty-bitmap:NAME} read from a server."""
    h = srv.connect([PREFIX + n for n in names])
    out = {}
    for n in names:
        out[n] = extents(h, PREFIX + n)
    h.shutdown()
    return out


def qemu_nbd_maps(img, names):
    if not names:
        return {}
    args = ["-r", "-f", "qcow2"]
    for n in names:
        args += ["-B", n]
    with Server.qemu_nbd(args + [img]) as srv:
        return maps(srv, names)


def our_sha256(img):
    """{name: sha256} from nbdcbt-img info (loadable bitmaps only)."""
    out = json.loads(run(NBDCBT_IMG, "info", "--output=json", img).stdout)
    return {b["name"]: b["sha256"]
            for b in out["format-specific"]["data"].get("bitmaps", [])
            if "sha256" in b}


def qsd_sha256(img, names):
    """{name: x-debug-block-dirty-bitmap-sha256} from qemu-storage-daemon
    opening IMG read-only."""
    d = tempfile.mkdtemp(dir=scratch_dir())
    qmp = os.path.join(d, "qmp")
    p = subprocess.Popen(
        ["qemu-storage-daemon",
         "--blockdev", "driver=file,filename=%s,node-name=f,read-only=on"
         % img.replace(",", ",,"),
         "--blockdev", "driver=qcow2,file=f,node-name=n,read-only=on",
         "--chardev", "socket,path=%s,server=on,wait=off,id=c0" % qmp,
         "--monitor", "chardev=c0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.time() + 30
        while not os.path.exists(qmp):
            if p.poll() is not None or time.time() > end:
                raise RuntimeError("qemu-storage-daemon did not start: %s"
                                   % p.stderr.read().decode())
            time.sleep(0.02)
        s = socket.socket(socket.AF_UNIX)
        s.connect(qmp)
        f = s.makefile("rw")

        def call(cmd, **args):
            f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
            f.flush()
            while True:
                r = json.loads(f.readline())
                if "return" in r or "error" in r:
                    return r

        json.loads(f.readline())        # greeting
        call("qmp_capabilities")
        out = {}
        for n in names:
            r = call("x-debug-block-dirty-bitmap-sha256", node="n", name=n)
            out[n] = r.get("return", {}).get("sha256", r.get("error"))
        s.close()
        return out
    finally:
        p.terminate()
        p.wait()
