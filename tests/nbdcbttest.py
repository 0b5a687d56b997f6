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

"""Shared helpers for Python tests (run with Debian's /usr/bin/python3,
which owns the libnbd module).

    from nbdcbttest import Server, scratch_dir
    with Server.nbdcbt(["memory", "size=1M"]) as srv:
        h = srv.connect()            # a connected nbd.NBD handle
        ...
    with Server.qemu_nbd(["-f", "qcow2", "-B", "b0", img]) as srv: ...
    with Server.nbdkit(["file", "disk.raw"]) as srv: ...

Every server listens on a fresh Unix socket; srv.uri is its NBD URI.
A test exits 77 to be reported as skipped.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import nbd

TOP_BUILDDIR = os.environ.get("top_builddir", "")
NBDCBT = os.environ.get("NBDCBT") or os.path.join(TOP_BUILDDIR, "nbdcbt")

_scratch = None


def scratch_dir():
    """A temporary directory removed when the test process exits."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.mkdtemp(prefix="nbdcbt-test.")
        import atexit
        atexit.register(shutil.rmtree, _scratch, True)
    return _scratch


failures = []


def check(cond, what, detail=""):
    """Record one expectation, printed as "ok" or "FAIL" (with DETAIL);
    the test goes on, and finish() exits 1 if any failed."""
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        failures.append(what)
        if detail:
            print("     " + str(detail)[:2000].replace("\n", "\n     "))
    return cond


def finish():
    """Exit 1 if a check failed."""
    if failures:
        print("%d failures" % len(failures))
        sys.exit(1)


def run(argv, timeout=120):
    """ARGV's completed process, its output captured as text."""
    return subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=timeout)


def check_qcow2_image(label, img, model):
    """After the server stopped: qemu-img check finds no corruption and no
    leak in IMG, and qemu-img compare finds it equal to MODEL (bytes)."""
    p = run(["qemu-img", "check", img])
    check(p.returncode == 0, "%s: qemu-img check: no corruption, no leak"
          % label, p.stdout + p.stderr)
    raw = img + ".model"
    with open(raw, "wb") as f:
        f.write(model)
    p = run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, img])
    os.unlink(raw)
    check(p.returncode == 0, "%s: qemu-img compare: equal to the model"
          % label, p.stdout + p.stderr)


def sha256_file(path):
    """To tell whether a test left a file exactly as it was."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def skip(why):
    print("SKIP:", why)
    sys.exit(77)


def require(prog):
    if shutil.which(prog) is None:
        skip(prog + " is not installed")


def _wait_for(path, proc, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise RuntimeError("server exited with status %d before serving"
                               % proc.returncode)
        time.sleep(0.02)
    raise RuntimeError("timed out waiting for " + path)


class Server:
    """A server process on a Unix socket, stopped (SIGTERM) on exit."""

    def __init__(self, argv, sock, ready_file, export="", check_exit=False):
        self.sock = sock
        # nbdcbt must exit 0 on SIGTERM: a crash or a sanitizer report at
        # shutdown fails the test that stopped it.
        self.check_exit = check_exit
        self.export = export
        self.uri = "nbd+unix:///%s?socket=%s" % (export, sock)
        self.proc = subprocess.Popen(argv)
        _wait_for(ready_file, self.proc)

    @classmethod
    def nbdcbt(cls, args, export="", extra=()):
        d = tempfile.mkdtemp(dir=scratch_dir())
        sock, pid = os.path.join(d, "sock"), os.path.join(d, "pid")
        argv = [NBDCBT, "-f", "-U", sock, "-P", pid] + list(extra) + list(args)
        return cls(argv, sock, pid, export, check_exit=True)

    @classmethod
    def nbdkit(cls, args, export=""):
        require("nbdkit")
        d = tempfile.mkdtemp(dir=scratch_dir())
        sock, pid = os.path.join(d, "sock"), os.path.join(d, "pid")
        argv = ["nbdkit", "-f", "-U", sock, "-P", pid] + list(args)
        return cls(argv, sock, pid, export)

    @classmethod
    def qemu_nbd(cls, args, export=""):
        require("qemu-nbd")
        d = tempfile.mkdtemp(dir=scratch_dir())
        sock, pid = os.path.join(d, "sock"), os.path.join(d, "pid")
        argv = ["qemu-nbd", "-k", sock, "--pid-file", pid] + list(args)
        return cls(argv, sock, pid, export)

    @classmethod
    def by_name(cls, name, nbdcbt_args, qemu_nbd_args, export=""):
        """The server the interop suite was asked for: 'nbdcbt' or
        'qemu-nbd'."""
        if name == "qemu-nbd":
            return cls.qemu_nbd(qemu_nbd_args, export)
        return cls.nbdcbt(nbdcbt_args, export)

    def connect(self, meta_contexts=(), structured=True, opt_mode=False):
        h = nbd.NBD()
        h.set_request_structured_replies(structured)
        for c in meta_contexts:
            h.add_meta_context(c)
        if opt_mode:
            h.set_opt_mode(True)
        h.set_export_name(self.export)
        h.connect_unix(self.sock)
        return h

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("server did not stop on signal %d" % sig)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        running = self.proc.poll() is None
        rc = self.stop()
        if exc_type is None and running and self.check_exit and rc != 0:
            raise RuntimeError("server exited with status %d on SIGTERM" % rc)
        return False


def extents(h, context, offset=0, length=None, flags=0):
    """All extents of CONTEXT from OFFSET as [(offset, length, flags)],
    walking block status requests to the end (or LENGTH)."""
    size = h.get_size()
    end = size if length is None else offset + length
    out = []
    while offset < end:
        got = []

        def cb(meta, off, ents, err):
            if meta == context:
                got.extend(ents)
            return 0
        h.block_status(min(end - offset, 2**31), offset, cb, flags)
        if not got:
            raise RuntimeError("no extents for " + context)
        for i in range(0, len(got), 2):
            ln, fl = got[i], got[i + 1]
            ln = min(ln, end - offset)
            if out and out[-1][2] == fl and out[-1][0] + out[-1][1] == offset:
                out[-1] = (out[-1][0], out[-1][1] + ln, fl)
            else:
                out.append((offset, ln, fl))
            offset += ln
            if offset >= end:
                break
    return out


# Speaking NBD by hand, for the tests that send what libnbd never would.

def raw_connect(path, timeout=10):
    """A plain Unix socket connected to PATH."""
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    return s


def recv_exactly(s, n):
    """N bytes from S, or None if the peer closes first."""
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def export_name_handshake(s):
    """Fixed newstyle to transmission with NBD_OPT_EXPORT_NAME (the
    default export, no zeroes); returns the export size."""
    import struct
    hello = recv_exactly(s, 18)
    assert hello and hello[:16] == b"NBDMAGICIHAVEOPT", hello
    s.sendall(struct.pack(">I", 3))
    s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, 0))
    return struct.unpack(">Q", recv_exactly(s, 10)[:8])[0]
