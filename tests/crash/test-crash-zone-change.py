#!/usr/bin/env python3
"""A restart after a crash with another zone-size= must not lose the
recovered bitmaps at any crash point.

A raw image's server is killed with bitmap b0 in use (its intent record
has 1 MiB zones).  A second server starts on it with zone-size=2M under
the crashrec shim, a client writes, and the server is killed again.  At
every sync boundary of what the second server wrote (crashstates.py),
b0 must still be recoverable and cover the writes of both runs: the
intent record with the new zone size must not replace the old one while
the descriptor still names the old zone size.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashstates                                     # noqa: E402
from nbdcbttest import NBDCBT, Server, scratch_dir, require  # noqa: E402

require("qemu-img")

MiB = 1 << 20
SIZE = 16 * MiB
TOP = os.environ.get("top_builddir", "../..")
SHIM = os.path.join(TOP, "tests/crash/.libs/crashrec.so")
IMG_TOOL = os.path.join(TOP, "tools/img/nbdcbt-img")
tmp = scratch_dir()


def run(*argv, check=True):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def serve_and_kill(d, zone, writes, env=None):
    sock = os.path.join(tmp, "sock")
    pidf = os.path.join(tmp, "pid")
    for f in (sock, pidf):
        if os.path.exists(f):
            os.unlink(f)
    proc = subprocess.Popen([NBDCBT, "-f", "-U", sock, "-P", pidf,
                             "--filter=dirty", "file",
                             "file=" + os.path.join(d, "disk.raw"),
                             "zone-size=%d" % zone], env=env)
    while not os.path.exists(pidf):
        if proc.poll() is not None:
            raise RuntimeError("server failed to start")
        time.sleep(0.02)

    class S:
        pass
    s = S()
    s.sock = sock
    s.export = ""
    h = Server.connect(s)
    for off in writes:
        h.pwrite(b"\x22" * 4096, off)
    h.flush()
    proc.send_signal(signal.SIGKILL)
    proc.wait()


live = os.path.join(tmp, "live")
os.makedirs(live)
with open(os.path.join(live, "disk.raw"), "wb") as f:
    f.truncate(SIZE)
run(IMG_TOOL, "bitmap", "--add", os.path.join(live, "disk.raw"), "b0")
first = [3 * MiB, 9 * MiB]
serve_and_kill(live, 1 * MiB, first)
desc = json.load(open(os.path.join(live, "disk.raw.qbm")))["QBM"]
assert desc["bitmaps"]["b0"]["in-use"] and desc["intent"]["zone-size"] == MiB

initial = crashstates.read_dir(live)
log = os.path.join(tmp, "log")
env = dict(os.environ, CRASHREC_DIR=live, CRASHREC_LOG=log, LD_PRELOAD=SHIM,
           ASAN_OPTIONS=":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                               "verify_asan_link_order=0"])))
second = [12 * MiB]
serve_and_kill(live, 2 * MiB, second, env)

ops = crashstates.parse(log)
print("%d operations logged, %d syncs"
      % (len(ops), sum(1 for o in ops if o[0] == "S")))
state_dir = os.path.join(tmp, "state")
n = bad = 0
for label, files in crashstates.crash_states(initial, ops, 2,
                                             __import__("random").Random(1)):
    crashstates.write_dir(state_dir, files)
    n += 1
    r = run(IMG_TOOL, "map", "--bitmap", "b0", "--output=json",
            os.path.join(state_dir, "disk.raw"), check=False)
    if r.returncode != 0:
        print("FAIL %s: b0 lost: %s" % (label, r.stderr.strip()))
        bad += 1
        continue
    dirty = [(e["offset"], e["offset"] + e["length"])
             for e in json.loads(r.stdout) if e["type"] == 1]
    with open(os.path.join(state_dir, "disk.raw"), "rb") as f:
        data = f.read()
    for off in first + second:
        written = data[off:off + 4096] == b"\x22" * 4096
        covered = any(a <= off and off + 4096 <= b for a, b in dirty)
        if (off in first or written) and not covered:
            print("FAIL %s: %d is written but clean in b0" % (label, off))
            bad += 1
print("%d crash states, %d bad" % (n, bad))
sys.exit(1 if bad else 0)
