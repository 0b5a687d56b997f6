#!/usr/bin/env python3
"""kill -9 at random moments of random workloads.

Several connections write, zero, trim and flush at random; the server is
killed with SIGKILL at a random moment and restarted on the same image,
again and again.  After every restart each bitmap is usable (never
"inconsistent") and marks every granule whose data differs from the image
when the bitmaps were created; at the end a clean stop leaves clean
flags for QEMU and `qemu-img check` finds nothing.  qcow2 and raw (QBM
sidecar).  KILL9_ROUNDS sets the number of crashes per format.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time

from nbdcbttest import NBDCBT, Server, extents, require, scratch_dir

import nbd

require("qemu-img")
MiB = 1 << 20
SIZE = 64 * MiB
GRAN = 64 * 1024
ROUNDS = int(os.environ.get("KILL9_ROUNDS", "3"))
SEED = int(os.environ.get("CRASH_SEED", str(int(time.time()))))
print("seed", SEED)
rng = random.Random(SEED)
tmp = scratch_dir()
IMG_TOOL = os.path.join(os.environ.get("top_builddir", "../.."),
                        "tools/img/nbdcbt-img")


def run(*argv):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE,
                          text=True).stdout


def start(fmt, img):
    sock = os.path.join(tmp, "sock")
    pidf = os.path.join(tmp, "pid")
    for p in (sock, pidf):
        if os.path.exists(p):
            os.unlink(p)
    plugin = "qcow2" if fmt == "qcow2" else "file"
    proc = subprocess.Popen([NBDCBT, "-f", "-U", sock, "-P", pidf,
                             "--filter=dirty", plugin, "file=" + img,
                             "bitmap=b1", "zone-size=1M",
                             "store-interval=1"])
    while not os.path.exists(pidf):
        if proc.poll() is not None:
            raise RuntimeError("server exited with %d at start"
                               % proc.returncode)
        time.sleep(0.02)
    return proc, sock


def connect(sock, ctx=()):
    h = nbd.NBD()
    for c in ctx:
        h.add_meta_context(c)
    h.connect_unix(sock)
    return h


def worker(sock, seed, stop):
    r = random.Random(seed)
    try:
        h = connect(sock)
        while not stop.is_set():
            off = r.randrange(0, SIZE // 4096) * 4096
            ln = min(r.choice([4096, 4096, 65536]), SIZE - off)
            x = r.random()
            if x < 0.6:
                h.pwrite(os.urandom(ln), off)
            elif x < 0.7:
                h.zero(ln, off)
            elif x < 0.8:
                h.trim(ln, off)
            else:
                h.flush()
            time.sleep(0.002)
    except nbd.Error:
        pass                    # the server died under us


def check(sock, reference, label):
    h = connect(sock, ["qemu:dirty-bitmap:b0", "qemu:dirty-bitmap:b1"])
    bad = 0
    data = b"".join(h.pread(16 * MiB, o) for o in range(0, SIZE, 16 * MiB))
    changed = [g for g in range(0, SIZE, GRAN)
               if data[g:g + GRAN] != reference[g:g + GRAN]]
    for b in ("b0", "b1"):
        if not h.can_meta_context("qemu:dirty-bitmap:" + b):
            print("FAIL %s: bitmap %s not exported" % (label, b))
            bad += 1
            continue
        marked = set()
        for off, ln, fl in extents(h, "qemu:dirty-bitmap:" + b):
            if fl & 1:
                marked.update(range(off - off % GRAN, off + ln, GRAN))
        missed = [g for g in changed if g not in marked]
        if missed:
            print("FAIL %s: %s misses %d changed granules, first %s"
                  % (label, b, len(missed), missed[:4]))
            bad += 1
        print("%s: %s: %d changed granules, %d dirty"
              % (label, b, len(changed), len(marked)))
    h.shutdown()
    return bad


def one(fmt):
    img = os.path.join(tmp, "disk." + fmt)
    if fmt == "qcow2":
        run("qemu-img", "create", "-q", "-f", "qcow2", img, str(SIZE))
        run("qemu-io", "-c", "write -P 0x22 0 %d" % SIZE, img)
        run("qemu-img", "bitmap", "--add", img, "b0")
    else:
        with open(img, "wb") as f:
            f.write(b"\x22" * SIZE)
        run(IMG_TOOL, "bitmap", "--add", img, "b0")
    reference = b"\x22" * SIZE
    bad = 0
    for rnd in range(ROUNDS):
        proc, sock = start(fmt, img)
        if rnd > 0:
            bad += check(sock, reference, "%s restart %d" % (fmt, rnd))
        stop = threading.Event()
        ths = [threading.Thread(target=worker,
                                args=(sock, rng.random(), stop))
               for _ in range(3)]
        for t in ths:
            t.start()
        time.sleep(rng.uniform(0.1, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in ths:
            t.join()
        if fmt == "qcow2":
            out = run("qemu-img", "info", img)
            if "in-use" not in out:
                print("FAIL: QEMU does not see in-use bitmaps after a crash")
                bad += 1
    # Last restart: check, then a clean stop.
    proc, sock = start(fmt, img)
    bad += check(sock, reference, "%s final" % fmt)
    proc.send_signal(signal.SIGTERM)
    if proc.wait() != 0:
        print("FAIL: server exit status %d on SIGTERM" % proc.returncode)
        bad += 1
    if fmt == "qcow2":
        out = run("qemu-img", "info", img)
        if "in-use" in out:
            print("FAIL: in-use flags after a clean stop:\n" + out)
            bad += 1
        r = subprocess.run(["qemu-img", "check", img])
        if r.returncode not in (0, 3):
            print("FAIL: qemu-img check: %d" % r.returncode)
            bad += 1
    else:
        r = subprocess.run([IMG_TOOL, "check", img])
        if r.returncode != 0:
            print("FAIL: nbdcbt-img check: %d" % r.returncode)
            bad += 1
    return bad


sys.exit(1 if one("qcow2") + one("raw") else 0)
