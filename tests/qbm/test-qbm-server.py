#!/usr/bin/env python3
"""Raw images with a QBM sidecar, served: bitmap=b0 creates the sidecar
(IMAGE.qbm), `nbdcbt IMAGE` and `nbdcbt IMAGE.qbm` load it, qbm=PATH puts
it elsewhere (as for a block device), an image served without bitmaps
gets no sidecar, and a damaged sidecar stops the server with a message.
"""

import json
import os
import subprocess

from nbdcbttest import NBDCBT, Server, extents, scratch_dir

import nbd

d = scratch_dir()
img = os.path.join(d, "disk.raw")
with open(img, "wb") as f:
    f.truncate(8 << 20)
CTX = "qemu:dirty-bitmap:b0"


def dirty(srv):
    h = srv.connect([CTX])
    assert h.can_meta_context(CTX)
    r = [(o, ln) for o, ln, fl in extents(h, CTX) if fl & 1]
    h.shutdown()
    return r


# Served without bitmaps: no sidecar appears.
with Server.nbdcbt([img]) as srv:
    h = srv.connect()
    h.pwrite(b"x" * 4096, 0)
    h.shutdown()
assert not os.path.exists(img + ".qbm"), "a sidecar appeared"

# bitmap=b0 creates it; the writes are recorded and kept.
with Server.nbdcbt(["--filter=dirty", "file", img, "bitmap=b0"]) as srv:
    h = srv.connect()
    h.pwrite(b"y" * 4096, 1 << 20)
    h.shutdown()
desc = json.load(open(img + ".qbm"))["QBM"]
assert desc["version"] == 1 and desc["image"]["format"] == "raw"
assert desc["bitmaps"]["b0"]["in-use"] is False

# nbdcbt IMAGE (probe: file plugin + dirty filter) and nbdcbt IMAGE.qbm.
for arg in (img, img + ".qbm"):
    with Server.nbdcbt([arg]) as srv:
        assert dirty(srv) == [(1 << 20, 65536)], dirty(srv)

# While served read-write the bitmaps are in use on disk.
with Server.nbdcbt([img]) as srv:
    h = srv.connect()
    h.pwrite(b"z" * 4096, 3 << 20)
    desc = json.load(open(img + ".qbm"))["QBM"]
    assert desc["bitmaps"]["b0"]["in-use"] is True
    assert "intent" in desc
    h.shutdown()
with Server.nbdcbt([img]) as srv:
    assert dirty(srv) == [(1 << 20, 65536), (3 << 20, 65536)]

# qbm=PATH: the sidecar elsewhere.
other = os.path.join(d, "side")
os.mkdir(other)
side = os.path.join(other, "disk.qbm")
with Server.nbdcbt(["--filter=dirty", "file", img, "qbm=" + side,
                    "bitmap=c0"]) as srv:
    h = srv.connect()
    h.pwrite(b"w" * 4096, 5 << 20)
    h.shutdown()
assert "c0" in json.load(open(side))["QBM"]["bitmaps"]
assert "c0" not in json.load(open(img + ".qbm"))["QBM"]["bitmaps"]

# Damage: the server refuses to start, with the reason.
f = os.path.join(d, json.load(open(img + ".qbm"))["QBM"]["bitmaps"]["b0"]
                 ["file"])
with open(f, "r+b") as fp:
    fp.write(b"\xff")
r = subprocess.run([NBDCBT, "-f", "-U", os.path.join(d, "s"), img],
                   stderr=subprocess.PIPE, text=True)
assert r.returncode != 0 and "checksum mismatch" in r.stderr, r.stderr
print(r.stderr.strip())
with open(img, "ab") as fp:
    fp.truncate(16 << 20)
r = subprocess.run([NBDCBT, "-f", "-U", os.path.join(d, "s"), img],
                   stderr=subprocess.PIPE, text=True)
assert r.returncode != 0 and "resized" in r.stderr, r.stderr
print(r.stderr.strip())
