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

# Header rewrites keep what we do not know: unknown header extensions and
# unknown header fields survive, unknown autoclear bits are cleared on a
# writable open, unknown incompatible bits are refused.
import os
import shutil
import struct
import subprocess
import sys
import tempfile

tool = os.path.join(os.environ["top_builddir"], "common/qcow2/qcow2-test-tool")
if shutil.which("qemu-img") is None:
    sys.exit(77)
d = tempfile.mkdtemp(prefix="qcow2-header.")
img = os.path.join(d, "img.qcow2")
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "16M"],
               check=True)

# Add 8 bytes of unknown header fields and an unknown extension, set an
# unknown autoclear bit.
with open(img, "r+b") as f:
    h = bytearray(f.read(65536))
    hlen = struct.unpack(">I", h[100:104])[0]
    exts = h[hlen:4096]
    unknown_ext = struct.pack(">II", 0x12345678, 5) + b"hello\0\0\0"
    h[100:104] = struct.pack(">I", hlen + 8)
    newh = h[:hlen] + b"FIELDS!!" + unknown_ext + exts
    newh = newh[:65536]
    autoclear = struct.unpack(">Q", newh[88:96])[0] | (1 << 40)
    newh[88:96] = struct.pack(">Q", autoclear)
    f.seek(0)
    f.write(newh)

subprocess.run(["qemu-img", "check", "-q", img], check=True)
model = os.path.join(d, "model.raw")
subprocess.run(["qemu-img", "convert", "-O", "raw", img, model], check=True)
subprocess.run([tool, "random", img, model, "1", "30"], check=True)
# A header rewrite: add a bitmap.
subprocess.run([tool, "bitmaps", img, "add", "b", "65536"], check=True)
subprocess.run(["qemu-img", "check", "-q", img], check=True)
subprocess.run(["qemu-img", "compare", "-q", "-f", "qcow2", "-F", "raw",
                img, model], check=True)

with open(img, "rb") as f:
    h = f.read(65536)
hlen = struct.unpack(">I", h[100:104])[0]
assert hlen == 120, hlen
assert h[112:120] == b"FIELDS!!", h[112:120]
autoclear = struct.unpack(">Q", h[88:96])[0]
assert autoclear == 1, hex(autoclear)   # bitmaps bit only
off = hlen
found = set()
while True:
    magic, ln = struct.unpack(">II", h[off:off + 8])
    if magic == 0:
        break
    found.add(magic)
    if magic == 0x12345678:
        assert h[off + 8:off + 13] == b"hello"
    off += 8 + ((ln + 7) & ~7)
assert 0x12345678 in found, found
assert 0x23852875 in found, found
out = subprocess.run(["qemu-img", "info", "--output=json", img],
                     capture_output=True, text=True, check=True).stdout
assert '"name": "b"' in out

# Unknown incompatible bit: refused, file unchanged.
with open(img, "r+b") as f:
    f.seek(72)
    f.write(struct.pack(">Q", 1 << 30))
with open(img, "rb") as f:
    before = f.read()
r = subprocess.run([tool, "random", img, model, "1", "1"],
                   capture_output=True, text=True)
assert r.returncode == 1 and "unsupported qcow2 feature" in r.stderr, r.stderr
with open(img, "rb") as f:
    assert f.read() == before
shutil.rmtree(d)
print("OK")
