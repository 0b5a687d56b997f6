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

"""Helpers of the backup session tests.

    from sessions import Disk, Qmp, Writer, check_instant

A Disk is a raw image served by nbdcbt with the fleece and dirty filters
and a control socket.  Its blocks start with a known pattern.  A Writer
is a separate process writing whole blocks (each block stamped with the
write's sequence number), zeroing and trimming, one request at a time,
and logging each request once it completed; check_instant proves that
an image equals the disk as it was after exactly the first K requests,
for some K: a true point in time, nothing torn, nothing from later.
"""

import atexit
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import nbd

from nbdcbttest import NBDCBT, scratch_dir

BLOCK = 65536


def initial_block(b):
    """What block B holds before any write: its number, not zero."""
    return struct.pack("<QQ", 0xFFFFFFFF00000000 | b, b) * (BLOCK // 16)


def stamped_block(seq, b):
    return struct.pack("<QQ", seq, b) * (BLOCK // 16)


def _kill(proc):
    """At exit: a process a failed test left running."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class Qmp:
    """A QMP client of the server's control socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.f = self.sock.makefile("rw")
        self.events = []
        greeting = self._recv()
        assert "QMP" in greeting, greeting
        self.cmd("qmp_capabilities")

    def _recv(self):
        line = self.f.readline()
        if not line:
            raise EOFError("control socket closed")
        return json.loads(line)

    def execute(self, name, **args):
        """The whole answer: {"return": ...} or {"error": ...}."""
        msg = {"execute": name}
        if args:
            msg["arguments"] = {k.replace("_", "-"): v
                                for k, v in args.items()}
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            r = self._recv()
            if "event" in r:
                self.events.append(r)
                continue
            return r

    def cmd(self, name, **args):
        r = self.execute(name, **args)
        if "error" in r:
            raise RuntimeError("%s: %s" % (name, r["error"]["desc"]))
        return r["return"]

    def error(self, name, **args):
        """The error message of a command that must fail."""
        r = self.execute(name, **args)
        assert "error" in r, "%s %s did not fail: %s" % (name, args, r)
        return r["error"]["desc"]

    def wait_event(self, name, timeout=30, **match):
        end = time.time() + timeout
        while True:
            for e in self.events:
                if e["event"] == name and all(
                        e.get("data", {}).get(k) == v
                        for k, v in match.items()):
                    self.events.remove(e)
                    return e
            if time.time() > end:
                raise RuntimeError("no event %s %s" % (name, match))
            self.sock.settimeout(max(0.1, end - time.time()))
            try:
                self.events.append(self._recv())
            except socket.timeout:
                pass
            finally:
                self.sock.settimeout(None)

    def close(self):
        self.f.close()
        self.sock.close()


class Disk:
    """nbdcbt serving a raw image as node NODE (export NODE) with the
    fleece and dirty filters (bitmap b0) and a control socket."""

    def __init__(self, blocks=256, nodes=("disk0",), bitmap="b0",
                 extra=(), dirname=None, fmt="raw", description=None):
        self.dir = dirname or os.path.join(scratch_dir(),
                                           "disk-%d" % time.monotonic_ns())
        os.makedirs(self.dir, exist_ok=True)
        self.blocks = blocks
        self.size = blocks * BLOCK
        self.nodes = list(nodes)
        self.bitmap = bitmap
        self.extra = list(extra)
        self.description = description
        self.fmt = "qcow2" if len(self.nodes) > 1 else fmt
        self.images = {}
        for n in self.nodes:
            raw = os.path.join(self.dir, n + ".raw")
            if not os.path.exists(raw):
                with open(raw, "wb") as f:
                    for b in range(blocks):
                        f.write(initial_block(b))
            if self.fmt == "raw":
                self.images[n] = raw
                continue
            img = os.path.join(self.dir, n + ".qcow2")
            if not os.path.exists(img):
                subprocess.run(["qemu-img", "convert", "-q", "-f", "raw",
                                "-O", "qcow2", raw, img], check=True)
                if bitmap:
                    subprocess.run(["qemu-img", "bitmap", "--add", img,
                                    bitmap], check=True)
            self.images[n] = img
        self.sock = os.path.join(self.dir, "sock")
        self.ctl = os.path.join(self.dir, "ctl")
        self.proc = None
        self.start()

    def argv(self):
        a = [NBDCBT, "-f", "-U", self.sock, "--control=" + self.ctl]
        if len(self.nodes) == 1:
            # One disk: the plugin form, with the filters spelled out.
            n = self.nodes[0]
            a += ["-e", n, "--node-name=" + n]
            if self.description is not None:
                a += ["-D", self.description]
            a += ["--filter=fleece",
                  "--filter=dirty", "file" if self.fmt == "raw" else "qcow2",
                  self.images[n], "session-dir=" + self.dir]
            # A qcow2 image keeps its bitmap; a raw one's lives in memory.
            if self.bitmap and self.fmt == "raw":
                a.append("bitmap=" + self.bitmap)
        else:
            # Several: qcow2 images, whose default chain is fleece, dirty
            # and the qcow2 plugin (the bitmap lives in the image).
            for n in self.nodes:
                a += ["--export=%s=%s" % (n, self.images[n])]
        return a + self.extra

    def start(self):
        for p in (self.sock, self.ctl):
            if os.path.exists(p):
                os.unlink(p)
        self.proc = subprocess.Popen(self.argv())
        atexit.register(_kill, self.proc)
        end = time.time() + 30
        while not (os.path.exists(self.sock) and os.path.exists(self.ctl)):
            if self.proc.poll() is not None:
                raise RuntimeError("nbdcbt exited with %d" % self.proc.returncode)
            if time.time() > end:
                raise RuntimeError("nbdcbt did not start")
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        rc = self.proc.wait(30)
        if sig == signal.SIGTERM and rc != 0:
            raise RuntimeError("nbdcbt exited with %d on SIGTERM" % rc)
        return rc

    def uri(self, export):
        return "nbd+unix:///%s?socket=%s" % (export, self.sock)

    def connect(self, export, contexts=()):
        h = nbd.NBD()
        for c in contexts:
            h.add_meta_context(c)
        h.set_export_name(export)
        h.connect_unix(self.sock)
        return h

    def qmp(self):
        return Qmp(self.ctl)


WRITER = r'''
import os, random, struct, sys, signal, time
import nbd
sock, export, blocks, log, seed, seq = sys.argv[1:7]
blocks, BLOCK = int(blocks), 65536
random.seed(int(seed))
h = nbd.NBD()
h.set_export_name(export)
h.connect_unix(sock)
stop = False
def on_term(*a):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
seq = int(seq)
with open(log, "w", buffering=1) as f:
    f.write("ready\n")
    while not stop:
        b = random.randrange(blocks)
        op = random.random()
        if op < 0.90:
            h.pwrite(struct.pack("<QQ", seq, b) * (BLOCK // 16), b * BLOCK)
            kind = "w"
        elif op < 0.95:
            h.zero(BLOCK, b * BLOCK)
            kind = "z"
        else:
            h.trim(BLOCK, b * BLOCK)
            kind = "t"
        f.write("%d %s %d\n" % (seq, kind, b))
        seq += 1
h.shutdown()
'''


class Writer:
    """A process writing to EXPORT until stopped, in its first SPAN
    blocks (all of them by default)."""

    def __init__(self, disk, export, seed=1, span=None, first_seq=1,
                 history=()):
        """FIRST_SEQ and HISTORY: continue the log of a writer that was
        stopped (the server restarted)."""
        self.history = list(history)
        self.log = os.path.join(disk.dir, "writer-%s-%d.log"
                                % (export, time.monotonic_ns()))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, disk.sock, export,
             str(span or disk.blocks), self.log, str(seed),
             str(first_seq)])
        atexit.register(_kill, self.proc)
        end = time.time() + 30
        while not (os.path.exists(self.log) and open(self.log).read(6)):
            if time.time() > end or self.proc.poll() is not None:
                raise RuntimeError("the writer did not start")
            time.sleep(0.02)

    def count(self):
        with open(self.log) as f:
            return sum(1 for _ in f) - 1 + len(self.history)

    def wait_writes(self, n, timeout=60):
        """Until at least N more requests completed."""
        start = self.count()
        end = time.time() + timeout
        while self.count() < start + n:
            if time.time() > end or self.proc.poll() is not None:
                raise RuntimeError("the writer stopped writing")
            time.sleep(0.02)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        if self.proc.wait(30) != 0:
            raise RuntimeError("the writer failed")
        return self.ops()

    def ops(self):
        ops = list(self.history)
        with open(self.log) as f:
            for line in f:
                p = line.split()
                if len(p) == 3:
                    ops.append((int(p[0]), p[1], int(p[2])))
        return ops


def block_state(data, b):
    """('init',) | ('w', seq) | ('zero',) | ('torn',) of block B."""
    if data == initial_block(b):
        return ("init",)
    if data == bytes(BLOCK):
        return ("zero",)
    seq, bb = struct.unpack_from("<QQ", data)
    if bb == b and data == stamped_block(seq, b):
        return ("w", seq)
    return ("torn",)


def _after(exp, kind, b):
    """EXP (per block, the states it may hold) after one request."""
    if kind == "w":
        return None         # the caller sets ('w', seq)
    if kind == "z":
        return {("zero",)}
    # A trim reads as zero, or (a plugin that ignores it) as before.
    return exp[b] | {("zero",)}


def instants(image_bytes, blocks, ops):
    """Every K such that IMAGE_BYTES equals the disk after exactly the
    first K of OPS (applied to the initial disk), in increasing order;
    and, when there is none, a sentence saying where it first differs."""
    states = [block_state(image_bytes[b * BLOCK:(b + 1) * BLOCK], b)
              for b in range(blocks)]
    for b, s in enumerate(states):
        if s == ("torn",):
            return [], "block %d is torn or foreign" % b
    # K is at least the newest write the image holds.  It may be later
    # than the next write: a write zeroed before the instant leaves no
    # trace, so every later request is a candidate, walked once.
    k = max([s[1] for s in states if s[0] == "w"] + [0])
    if k > 0 and (not ops or ops[-1][0] < k):
        return [], "it holds write %d which the writer never completed" % k
    exp = [{("init",)} for _ in range(blocks)]
    later = []
    for seq, kind, b in ops:
        if seq > k:
            later.append((seq, kind, b))
            continue
        exp[b] = {("w", seq)} if kind == "w" else _after(exp, kind, b)
    bad = {b for b in range(blocks) if states[b] not in exp[b]}
    first_bad = None
    if bad:
        b = min(bad)
        first_bad = ("block %d holds %s, after the first %d requests it "
                     "held one of %s" % (b, states[b], k, sorted(exp[b])))
    found = [] if bad else [k]
    for seq, kind, b in later:
        exp[b] = {("w", seq)} if kind == "w" else _after(exp, kind, b)
        if states[b] in exp[b]:
            bad.discard(b)
        else:
            bad.add(b)
        if not bad:
            found.append(seq)
    return found, first_bad


def check_instant(image_bytes, blocks, ops, what="image", within=None):
    """IMAGE_BYTES must equal the disk after exactly the first K of OPS
    for some K, and with WITHIN=(LO, HI) for some LO <= K <= HI (one image
    can be several instants: a trim that may read as zero, a write zeroed
    later).  Returns the first such K."""
    found, why = instants(image_bytes, blocks, ops)
    if not found:
        raise AssertionError("%s is not the disk at one instant: %s"
                             % (what, why))
    if within is None:
        return found[0]
    lo, hi = within
    inside = [k for k in found if lo <= k <= hi]
    if not inside:
        shown = found if len(found) <= 8 else found[:4] + ["..."] + found[-4:]
        raise AssertionError("%s is the disk after %s requests, none "
                             "between %d and %d" % (what, shown, lo, hi))
    return inside[0]
