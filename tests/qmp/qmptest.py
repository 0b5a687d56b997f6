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

"""The QMP suite's daemons: the same qcow2 disk served by
qemu-storage-daemon or by nbdcbt, each with a QMP control socket.

    for d in daemons():                 # QMP_SERVER=nbdcbt|qemu|both
        with d:
            d.qmp.cmd("block-dirty-bitmap-add", node=NODE, name="b0")
            d.write(0, b"x" * 4096)
            d.dirty_map("b0")           # [(offset, length, flags)] over NBD

A daemon serves one qcow2 image with node name NODE and export NODE.
Reading a bitmap's map over NBD: nbdcbt offers every bitmap on every new
connection; QEMU only on an export created with it (which marks it busy
while the export lives), so for QEMU a temporary second export is added
and deleted around the read.
"""

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "../.."),
                                "tests"))
from nbdcbttest import NBDCBT, scratch_dir, skip, extents  # noqa: E402
import nbd  # noqa: E402

NODE = "disk0"
SIZE = 4 * 1024 * 1024


class QMPError(Exception):
    def __init__(self, klass, desc):
        super().__init__("%s: %s" % (klass, desc))
        self.klass = klass
        self.desc = desc


class QMP:
    """A QMP client on a Unix socket."""

    def __init__(self, path, negotiate=True, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self.greeting = self.recv()
        if negotiate:
            self.cmd("qmp_capabilities")

    def recv(self):
        """The next message, events included (None at EOF)."""
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                return None
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send_raw(self, data):
        self.sock.sendall(data)

    def execute(self, msg):
        """Send MSG (a dict or bytes); the answer, events kept aside."""
        if isinstance(msg, dict):
            msg = json.dumps(msg).encode()
        self.send_raw(msg + b"\n")
        while True:
            r = self.recv()
            if r is None:
                raise EOFError("the server closed the connection")
            if "event" in r:
                self.events.append(r)
                continue
            return r

    def cmd(self, _cmd, **args):
        """Run _CMD; its return value, or QMPError."""
        msg = {"execute": _cmd}
        if args:
            msg["arguments"] = args
        r = self.execute(msg)
        if "error" in r:
            raise QMPError(r["error"]["class"], r["error"]["desc"])
        return r["return"]

    def try_cmd(self, _cmd, **args):
        """('ok', return) or ('error', class, desc)."""
        try:
            return ("ok", self.cmd(_cmd, **args))
        except QMPError as e:
            return ("error", e.klass, e.desc)

    def close(self):
        self.sock.close()


def _wait_for(path, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise RuntimeError("daemon exited with status %d"
                               % proc.returncode)
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + path)


class Daemon:
    name = None

    def __init__(self, image=None, size=SIZE):
        self.dir = tempfile.mkdtemp(dir=scratch_dir())
        self.image = image or os.path.join(self.dir, "disk.qcow2")
        if image is None:
            subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2",
                                   self.image, str(size)])
        self.nbd_sock = os.path.join(self.dir, "nbd.sock")
        self.qmp_sock = os.path.join(self.dir, "qmp.sock")
        self.proc = None
        self.qmp = None
        self._h = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def connect_qmp(self, negotiate=True):
        return QMP(self.qmp_sock, negotiate)

    def own_qmp(self, negotiate=True):
        """A new QMP connection in place of the daemon's own (QEMU's
        monitor serves one client at a time); reconnect() gives it back."""
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        return self.connect_qmp(negotiate)

    def reconnect(self):
        if self.qmp is not None:
            self.qmp.close()
        self.qmp = self.connect_qmp()

    def nbd(self, export=NODE, contexts=()):
        h = nbd.NBD()
        for c in contexts:
            h.add_meta_context(c)
        h.set_export_name(export)
        h.connect_unix(self.nbd_sock)
        return h

    def write(self, offset, data):
        """Write through NBD (a connection kept open for writes)."""
        if self._h is None:
            self._h = self.nbd()
        self._h.pwrite(data, offset)
        self._h.flush()

    def zero(self, offset, length):
        if self._h is None:
            self._h = self.nbd()
        self._h.zero(length, offset)
        self._h.flush()

    def read(self, offset, length):
        if self._h is None:
            self._h = self.nbd()
        return self._h.pread(length, offset)

    def nodes_bitmaps(self):
        """{bitmap name: BlockDirtyInfo} of node NODE."""
        for n in self.qmp.cmd("query-named-block-nodes"):
            if n["node-name"] == NODE:
                return {b["name"]: b for b in n.get("dirty-bitmaps", [])}
        raise RuntimeError("no node " + NODE)

    def sha256(self, name):
        return self.qmp.cmd("x-debug-block-dirty-bitmap-sha256", node=NODE,
                            name=name)["sha256"]

    def stop(self):
        if self._h is not None:
            try:
                self._h.shutdown()
            except nbd.Error:
                pass                    # the server stopped already
            self._h = None
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            rc = self.proc.wait(60)
        elif self.proc is not None:
            rc = self.proc.returncode
        self.proc = None
        return rc


class QemuDaemon(Daemon):
    name = "qemu"

    def start(self):
        argv = ["qemu-storage-daemon",
                "--blockdev", "driver=file,filename=%s,node-name=file0"
                % self.image,
                "--blockdev", "driver=qcow2,file=file0,node-name=" + NODE,
                "--nbd-server", "addr.type=unix,addr.path=" + self.nbd_sock,
                "--export", "type=nbd,id=e0,node-name=%s,name=%s,writable=on"
                % (NODE, NODE),
                "--chardev", "socket,path=%s,server=on,wait=off,id=m0"
                % self.qmp_sock,
                "--monitor", "chardev=m0"]
        self.proc = subprocess.Popen(argv)
        _wait_for(self.qmp_sock, self.proc)
        _wait_for(self.nbd_sock, self.proc)
        self.qmp = self.connect_qmp()

    def dirty_map(self, name):
        # QEMU exports a bitmap only on an export made with it.
        self.qmp.cmd("block-export-add", type="nbd", id="map0",
                     **{"node-name": NODE}, name="map0", bitmaps=[name],
                     writable=True)
        h = self.nbd("map0", ["qemu:dirty-bitmap:" + name])
        try:
            return extents(h, "qemu:dirty-bitmap:" + name)
        finally:
            h.shutdown()
            self.qmp.cmd("block-export-del", id="map0")
            end = time.time() + 30
            while any(e["id"] == "map0"
                      for e in self.qmp.cmd("query-block-exports")):
                if time.time() > end:
                    raise RuntimeError("export map0 not deleted")
                time.sleep(0.05)


class NbdcbtDaemon(Daemon):
    name = "nbdcbt"

    def start(self, extra=()):
        argv = [NBDCBT, "-f", "-U", self.nbd_sock, "--control",
                self.qmp_sock, "-e", NODE] + list(extra) + [self.image]
        self.proc = subprocess.Popen(argv)
        _wait_for(self.qmp_sock, self.proc)
        _wait_for(self.nbd_sock, self.proc)
        self.qmp = self.connect_qmp()

    def dirty_map(self, name):
        h = self.nbd(NODE, ["qemu:dirty-bitmap:" + name])
        try:
            return extents(h, "qemu:dirty-bitmap:" + name)
        finally:
            h.shutdown()

    def stop(self):
        rc = super().stop()
        if rc not in (None, 0):
            raise RuntimeError("nbdcbt exited with status %d on SIGTERM"
                               % rc)
        return rc


def _have(prog):
    from shutil import which
    return which(prog) is not None


def daemon_classes():
    """The daemons QMP_SERVER asks for (default: both where QEMU is
    installed, else nbdcbt alone)."""
    want = os.environ.get("QMP_SERVER", "both") or "both"
    if not _have("qemu-img"):
        skip("qemu-img is not installed")
    have_qemu = _have("qemu-storage-daemon")
    if want == "qemu":
        if not have_qemu:
            skip("qemu-storage-daemon is not installed")
        return [QemuDaemon]
    if want == "nbdcbt":
        return [NbdcbtDaemon]
    return ([QemuDaemon] if have_qemu else []) + [NbdcbtDaemon]


def run_on_copies(base, run):
    """{daemon name: RUN(daemon)}, each daemon serving its own copy of
    the image BASE."""
    results = {}
    for cls in daemon_classes():
        img = os.path.join(scratch_dir(), cls.name + ".qcow2")
        shutil.copy(base, img)
        with cls(image=img) as d:
            results[d.name] = run(d)
    return results


def compare(results):
    """RESULTS: {daemon name: [step results]}; exit 1 on a difference."""
    names = list(results)
    if len(names) < 2:
        return
    a, b = names[0], names[1]
    bad = 0
    for i, (x, y) in enumerate(zip(results[a], results[b])):
        if x != y:
            print("step %d differs:\n  %s: %r\n  %s: %r" % (i, a, x, b, y))
            bad += 1
    if len(results[a]) != len(results[b]):
        print("different number of steps: %d and %d"
              % (len(results[a]), len(results[b])))
        bad += 1
    if bad:
        sys.exit(1)
    print("%s and %s agree on %d steps" % (a, b, len(results[a])))


def wait_readable(sock, timeout):
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)
