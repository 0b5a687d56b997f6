#!/usr/bin/env python3
"""Power-loss crash states (CrashMonkey/ALICE style).

The server runs under the crashrec shim (LD_PRELOAD), which records every
write and sync it makes to the image and its bitmap store; a random
workload (writes, zeroes, trims, flushes, FUA) runs, the server is killed
with SIGKILL, and crashstates.py builds crash states from the log: every
sync boundary, with none, all, and random subsets in random orders of the
writes not yet synced.  On every state:

  - the image is readable, and for qcow2 `qemu-img check` finds no
    corruption (leaks are allowed: a crash may leak, as in QEMU);
  - every bitmap is usable (recovered), unless the state is from before
    any data was written;
  - every granule whose data differs from the image at the start (when
    the bitmaps were empty) is dirty in every bitmap: the superset
    promise;
  - on some states the server itself opens the image and its exported
    qemu:dirty-bitmap contexts equal the offline map.

CRASH_STATES (default 160 per format) bounds the states checked;
CRASH_LONG=1 checks 2000 per format with a longer workload.
CRASH_NO_RWF_DSYNC=1 runs qcow2 alone on a kernel without RWF_DSYNC, as
the shim pretends (test-crash-no-rwf-dsync.sh): the record's updates fall
back to a write and a sync of the image.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashstates                                     # noqa: E402
from nbdcbttest import (NBDCBT, Server, extents, scratch_dir,  # noqa: E402
                        require)

require("qemu-img")
require("qemu-io")

MiB = 1 << 20
SIZE = 16 * MiB
GRAN = 64 * 1024
ZONE = 1 * MiB
LONG = os.environ.get("CRASH_LONG") == "1"
LIMIT = int(os.environ.get("CRASH_STATES", "2000" if LONG else "160"))
NO_RWF_DSYNC = os.environ.get("CRASH_NO_RWF_DSYNC") == "1"
NOPS = 400 if LONG else 80
SEED = int(os.environ.get("CRASH_SEED", str(int(time.time()))))
TOP = os.environ.get("top_builddir", "../..")
SHIM = os.path.join(TOP, "tests/crash/.libs/crashrec.so")
IMG_TOOL = os.path.join(TOP, "tools/img/nbdcbt-img")
print("seed", SEED, "states per format", LIMIT)
rng = random.Random(SEED)
tmp = scratch_dir()


def run(*argv, check=True):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def image_data(d, fmt, img):
    if fmt == "raw":
        with open(os.path.join(d, img), "rb") as f:
            data = f.read()
        return data + b"\0" * (SIZE - len(data)), None
    out = os.path.join(tmp, "data.raw")
    r = run("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw",
            os.path.join(d, img), out, check=False)
    if r.returncode != 0:
        return None, r.stderr.strip()
    with open(out, "rb") as f:
        return f.read(), None


def offline_map(d, img, bitmap):
    r = run(IMG_TOOL, "map", "--bitmap", bitmap, "--output=json",
            os.path.join(d, img), check=False)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return [(e["offset"], e["length"]) for e in json.loads(r.stdout)
            if e["type"] == 1], None


def workload(srv):
    """Random writes, zeroes, trims and flushes; returns the zones
    written since the last flush (for the false-dirty report)."""
    h = srv.connect()
    for i in range(NOPS):
        r = rng.random()
        off = rng.randrange(0, SIZE // 4096) * 4096
        ln = min(rng.choice([4096, 8192, 65536, 200 * 1024]), SIZE - off)
        fua = nbd_fua if rng.random() < 0.1 else 0
        if r < 0.6:
            h.pwrite(os.urandom(ln), off, fua)
        elif r < 0.72:
            h.zero(ln, off, fua)
        elif r < 0.8:
            h.trim(ln, off, fua)
        else:
            h.flush()
    # No disconnect: the server dies with the connection open.


def main_for(fmt):
    base = os.path.join(tmp, fmt + "-base")
    live = os.path.join(tmp, fmt + "-live")
    os.makedirs(base)
    img = "disk." + fmt
    path = os.path.join(base, img)
    if fmt == "qcow2":
        run("qemu-img", "create", "-q", "-f", "qcow2", path, str(SIZE))
        run("qemu-io", "-c", "write -P 0x11 0 %d" % SIZE, path)
        run("qemu-img", "bitmap", "--add", path, "b0")
        plugin = ["qcow2", "file=" + os.path.join(live, img)]
    else:
        with open(path, "wb") as f:
            f.write(b"\x11" * SIZE)
        run(IMG_TOOL, "bitmap", "--add", path, "b0")
        plugin = ["file", "file=" + os.path.join(live, img)]
    reference, _ = image_data(base, fmt, img)
    shutil.copytree(base, live)
    initial = crashstates.read_dir(live)

    log = os.path.join(tmp, fmt + ".log")
    # In a sanitizer build the shim is preloaded before ASan's runtime,
    # which ASan accepts once told (the shim's calls go on through ASan's
    # interceptors to libc).
    env = dict(os.environ, CRASHREC_DIR=live, CRASHREC_LOG=log,
               LD_PRELOAD=SHIM,
               ASAN_OPTIONS=":".join(
                   filter(None, [os.environ.get("ASAN_OPTIONS"),
                                 "verify_asan_link_order=0"])))
    sock = os.path.join(tmp, fmt + ".sock")
    pidf = os.path.join(tmp, fmt + ".pid")
    proc = subprocess.Popen([NBDCBT, "-f", "-U", sock, "-P", pidf,
                             "--filter=dirty"] + plugin +
                            ["bitmap=b1", "zone-size=%d" % ZONE,
                             "store-on-flush=true"], env=env)
    while not os.path.exists(pidf):
        if proc.poll() is not None:
            raise RuntimeError("server failed to start")
        time.sleep(0.02)

    class S:
        pass
    s = S()
    s.sock = sock
    s.connect = lambda: Server.connect(s)
    s.export = ""
    workload(s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    ops = crashstates.parse(log)
    nsync = sum(1 for o in ops if o[0] == "S")
    ndsync = sum(1 for o in ops if o[0] == "D")
    print("%s: %d operations logged, %d syncs, %d durable writes"
          % (fmt, len(ops), nsync, ndsync))
    early = 0
    if fmt == "qcow2" and NO_RWF_DSYNC:
        # The fallback: each update of the record's bytes (a write of a
        # few bytes into cluster 0; header rewrites are longer) is the
        # image's next operation before a sync.
        image_ops = [o for o in ops if o[1] == img]
        updates = 0
        for i, o in enumerate(image_ops):
            if o[0] in ("W", "D") and o[2] < 65536 and len(o[3]) <= 8:
                updates += 1
                if o[0] == "D" or i + 1 == len(image_ops) \
                        or image_ops[i + 1][0] != "S":
                    print("FAIL qcow2: record update %d is not a write "
                          "followed by a sync" % updates)
                    early = 1
        if updates == 0:
            print("FAIL qcow2: no update of the intent record logged")
            early = 1
    elif fmt == "qcow2":
        # The first write into a clean zone makes the record's byte
        # durable by itself (RWF_DSYNC into cluster 0), not by syncing
        # the image, which would write out every data page too.
        record = [o for o in ops if o[0] == "D" and o[1] == img
                  and o[2] < 65536]
        if not record:
            print("FAIL qcow2: no intent record update was a durable write "
                  "into cluster 0 (RWF_DSYNC)")
            early = 1
    state_dir = os.path.join(tmp, fmt + "-state")
    n = bad = unusable = server_checked = 0
    false_dirty = []
    for label, files in crashstates.crash_states(initial, ops, 3, rng,
                                                 LIMIT):
        crashstates.write_dir(state_dir, files)
        n += 1
        if fmt == "qcow2":
            r = run("qemu-img", "check", "-q", os.path.join(state_dir, img),
                    check=False)
            if r.returncode not in (0, 3):
                print("FAIL %s: qemu-img check: rc %d %s"
                      % (label, r.returncode, r.stdout + r.stderr))
                bad += 1
                continue
        data, err = image_data(state_dir, fmt, img)
        if data is None:
            print("FAIL %s: the image cannot be read: %s" % (label, err))
            shutil.copy(os.path.join(state_dir, img),
                        os.path.join(os.environ.get("CRASH_KEEP", tmp),
                                     "unreadable-" + img))
            bad += 1
            continue
        changed = [g for g in range(0, SIZE, GRAN)
                   if data[g:g + GRAN] != reference[g:g + GRAN]]
        for b in ("b0", "b1"):
            dirty, err = offline_map(state_dir, img, b)
            if dirty is None:
                if changed:
                    print("FAIL %s: bitmap %s unusable but %d granules "
                          "changed: %s" % (label, b, len(changed), err))
                    bad += 1
                else:
                    unusable += 1
                continue
            marked = set()
            for off, ln in dirty:
                marked.update(range(off - off % GRAN, off + ln, GRAN))
            missed = [g for g in changed if g not in marked]
            if missed:
                print("FAIL %s: bitmap %s misses changed granules at %s"
                      % (label, b, missed[:8]))
                bad += 1
            false_dirty.append(len(marked) - len(changed))
        if n % 25 == 1 and fmt == "qcow2" or n % 25 == 2 and fmt == "raw":
            # The server opens the state and exports the same map.
            server_checked += 1
            sp = [NBDCBT.replace("nbdcbt", "nbdcbt")]
            args = ["-r", "--filter=dirty",
                    "qcow2" if fmt == "qcow2" else "file",
                    "file=" + os.path.join(state_dir, img)]
            try:
                want, err = offline_map(state_dir, img, "b0")
                with Server.nbdcbt(args) as srv:
                    h = srv.connect(["qemu:dirty-bitmap:b0"])
                    if h.can_meta_context("qemu:dirty-bitmap:b0"):
                        got = [(o, ln) for o, ln, fl in
                               extents(h, "qemu:dirty-bitmap:b0") if fl & 1]
                    else:
                        got = None
                    h.shutdown()
                if got != want:
                    print("FAIL %s: the server exports %s, the image holds %s"
                          % (label, got[:4], want[:4]))
                    bad += 1
            except RuntimeError as e:
                if changed:
                    print("FAIL %s: the server does not open it: %s"
                          % (label, e))
                    bad += 1
    fd = sorted(false_dirty)
    print("%s: %d crash states, %d failures, %d with unusable bitmaps "
          "before any write, %d opened by the server; false dirty "
          "granules per bitmap: median %d, max %d (a zone is %d granules)"
          % (fmt, n, bad, unusable, server_checked,
             fd[len(fd) // 2] if fd else 0, fd[-1] if fd else 0,
             ZONE // GRAN))
    return bad + early


import nbd                                             # noqa: E402
nbd_fua = nbd.CMD_FLAG_FUA
if NO_RWF_DSYNC:
    os.environ["CRASHREC_NO_RWF_DSYNC"] = "1"
    failures = main_for("qcow2")
else:
    failures = main_for("qcow2") + main_for("raw")
sys.exit(1 if failures else 0)
