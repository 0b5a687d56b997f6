#!/usr/bin/env python3
"""intent=false on a raw image: a crash leaves the bitmaps inconsistent.

The dirty filter's intent=false marks the bitmaps in use "as QEMU does",
without an intent record.  For a QBM sidecar that used to make a record
anyway, which nobody then updated: after kill -9 the bitmaps were
"recovered" from it and a write the server had acknowledged was reported
clean.  Now the descriptor names no record and they are inconsistent,
also when the previous run had crashed with a record that recovered
them.
"""

import json
import os
import signal
import subprocess
import sys
import time

from nbdcbttest import NBDCBT, Server, extents, scratch_dir

MiB = 1 << 20
TOP = os.environ.get("top_builddir", "../..")
IMG_TOOL = os.path.join(TOP, "tools/img/nbdcbt-img")
tmp = scratch_dir()
img = os.path.join(tmp, "disk.raw")
with open(img, "wb") as f:
    f.truncate(16 * MiB)
subprocess.run([IMG_TOOL, "bitmap", "--add", img, "b0"], check=True)
CTX = "qemu:dirty-bitmap:b0"


def crash_after(writes, *args):
    """Serve IMG with ARGS, write at WRITES, flush, kill -9.  The dirty
    extents of b0 the server exported at the start."""
    sock = os.path.join(tmp, "sock")
    pidf = os.path.join(tmp, "pid")
    for f in (sock, pidf):
        if os.path.exists(f):
            os.unlink(f)
    proc = subprocess.Popen([NBDCBT, "-f", "-U", sock, "-P", pidf,
                             "--filter=dirty", "file", img] + list(args))
    while not os.path.exists(pidf):
        if proc.poll() is not None:
            sys.exit("server failed to start")
        time.sleep(0.02)

    class S:
        pass
    s = S()
    s.sock = sock
    s.export = ""
    h = Server.connect(s, [CTX])
    before = [(o, n) for o, n, fl in extents(h, CTX) if fl & 1]
    for off in writes:
        h.pwrite(b"\x33" * 4096, off)
    h.flush()
    time.sleep(0.5)               # let a store thread run, if any
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return before


def offline_map():
    r = subprocess.run([IMG_TOOL, "map", "--bitmap", "b0", "--output=json",
                        img], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return [(e["offset"], e["length"]) for e in json.loads(r.stdout)
            if e["type"] == 1], None


def covers(extents, off):
    return any(o <= off and off + 4096 <= o + n for o, n in extents)


failed = False

# A clean sidecar, served with intent=false and killed after a write.
crash_after([5 * MiB], "intent=false")
dirty, err = offline_map()
print("after a crash with intent=false:", err if dirty is None else dirty)
if dirty is not None:
    print("FAIL: b0 was loaded (a write at 5 MiB, dirty: %r)" % dirty)
    failed = True
elif "inconsistent" not in err:
    print("FAIL: not refused as inconsistent")
    failed = True

# A crash with the record (recoverable), then a run with intent=false
# that crashes too.
subprocess.run([IMG_TOOL, "bitmap", "--remove", img, "b0"], check=True)
subprocess.run([IMG_TOOL, "bitmap", "--add", img, "b0"], check=True)
crash_after([3 * MiB], "zone-size=1M")
dirty, err = offline_map()
print("after a crash with the record:", err if dirty is None else dirty)
if dirty is None or not covers(dirty, 3 * MiB):
    print("FAIL: b0 not recovered from the record")
    failed = True
before = crash_after([7 * MiB], "intent=false")
if not covers(before, 3 * MiB):
    print("FAIL: the recovered b0 was not exported: %r" % before)
    failed = True
dirty, err = offline_map()
print("then a crash with intent=false:", err if dirty is None else dirty)
if dirty is not None or "inconsistent" not in err:
    print("FAIL: b0 loaded after a crash with intent=false")
    failed = True

sys.exit(1 if failed else 0)
