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

"""Damaged qcow2 images for the bad-input tests and the fuzz seeds.

Valid images are made with qemu-img / qemu-io (v3, 64 KiB clusters, two
persistent bitmaps with data, an allocated L2 table); each damage case
patches a copy of one of them.

    python3 qcow2corpus.py DIR    writes every case (and the valid images)
                                  to DIR, one file each

A case is (name, expect, make) where make(dir) returns the path of the
damaged image (or of the top of a chain), and expect is
  "open":  nbdcbt-img info and check must refuse the image (non-zero exit,
           a message) and so must the server;
  "check": info may succeed, check must find a corruption (exit 2) or
           refuse it (exit 1).
"""

import os
import shutil
import struct
import subprocess
import sys

CLUSTER = 65536
SIZE = 4 * 1024 * 1024

BITMAPS_MAGIC = 0x23852875
BACKING_FMT_MAGIC = 0xE2792ACA


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def make_valid(d):
    """The base image: two bitmaps with dirty data, data clusters."""
    path = os.path.join(d, "valid.qcow2")
    if not os.path.exists(path):
        run("qemu-img", "create", "-q", "-f", "qcow2", path, str(SIZE))
        run("qemu-img", "bitmap", "--add", path, "b0")
        run("qemu-img", "bitmap", "--add", "-g", "128k", path, "b1")
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 64k",
            "-c", "write -P 0x22 1M 128k", "-c", "write -z 3M 64k", path)
    return path


class Image:
    """The header, extensions and bitmap directory of a qcow2 file, parsed
    just enough to find what to patch."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
        d = self.data
        (self.magic, self.version, self.backing_offset, self.backing_size,
         self.cluster_bits, self.size, _, self.l1_size, self.l1_offset,
         self.reftable_offset, self.reftable_clusters, _, _) = \
            struct.unpack_from(">IIQIIQIIQQIIQ", d, 0)
        self.header_length = struct.unpack_from(">I", d, 100)[0]
        self.ext = {}
        off = self.header_length
        while True:
            magic, ln = struct.unpack_from(">II", d, off)
            if magic == 0:
                break
            self.ext[magic] = (off, ln)
            off += 8 + ((ln + 7) & ~7)
        self.entries = []
        if BITMAPS_MAGIC in self.ext:
            eoff = self.ext[BITMAPS_MAGIC][0] + 8
            self.bm_ext = eoff
            (self.nb_bitmaps, _, self.dir_size, self.dir_offset) = \
                struct.unpack_from(">IIQQ", d, eoff)
            p = self.dir_offset
            for _ in range(self.nb_bitmaps):
                (toff, tsize, flags, typ, gbits, nsize, xsize) = \
                    struct.unpack_from(">QIIBBHI", d, p)
                self.entries.append({"at": p, "table_offset": toff,
                                     "table_size": tsize, "flags": flags})
                p += (24 + nsize + xsize + 7) & ~7

    def l1_entry(self, i):
        return self.l1_offset + 8 * i

    def first_l2(self):
        e = struct.unpack_from(">Q", self.data, self.l1_offset)[0]
        return e & 0x00fffffffffffe00

    def put(self, fmt, offset, *values):
        struct.pack_into(">" + fmt, self.data, offset, *values)

    def get(self, fmt, offset):
        return struct.unpack_from(">" + fmt, self.data, offset)[0]

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.data)
        return path


def patched(name, fn):
    """A case made by patching the valid image with FN(img)."""
    def make(d):
        img = Image(make_valid(d))
        fn(img)
        return img.save(os.path.join(d, name + ".qcow2"))
    return make


def past_end(img):
    return (len(img.data) + 16 * CLUSTER) & ~(CLUSTER - 1)


def _backing_loop(d):
    a = os.path.join(d, "loop-a.qcow2")
    b = os.path.join(d, "loop-b.qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", b, str(SIZE))
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "loop-b.qcow2",
        "-F", "qcow2", a)
    run("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "loop-a.qcow2",
        "-F", "qcow2", b)
    return a


def _backing_self(d):
    a = os.path.join(d, "loop-self.qcow2")
    b = os.path.join(d, "loop-self-base.qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", b, str(SIZE))
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b",
        "loop-self-base.qcow2", "-F", "qcow2", a)
    run("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "loop-self.qcow2",
        "-F", "qcow2", a)
    return a


def _truncated(d):
    src = make_valid(d)
    path = os.path.join(d, "truncated-header.qcow2")
    with open(src, "rb") as f:
        data = f.read(60)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _set_dir_entry(i, field, fmt, value):
    offsets = {"table_offset": 0, "table_size": 8, "flags": 12, "type": 16,
               "granularity_bits": 17, "name_size": 18, "extra_data_size": 20}

    def fn(img):
        img.put(fmt, img.entries[i]["at"] + offsets[field], value)
    return fn


def _table_entry(img, i=0):
    return img.entries[i]["table_offset"]


def _overlap_tables(img):
    img.put("Q", img.entries[1]["at"], img.entries[0]["table_offset"])


def _table_over_l1(img):
    img.put("Q", img.entries[0]["at"], img.l1_offset)


def _dir_into_header(img):
    img.put("Q", img.bm_ext + 16, 0)


CASES = [
    # The header.
    ("bad-magic", "open", patched("bad-magic",
                                  lambda i: i.put("I", 0, 0x514649fc))),
    ("bad-version", "open", patched("bad-version", lambda i: i.put("I", 4, 4))),
    ("truncated-header", "open", _truncated),
    ("cluster-bits-huge", "open",
     patched("cluster-bits-huge", lambda i: i.put("I", 20, 40))),
    ("cluster-bits-small", "open",
     patched("cluster-bits-small", lambda i: i.put("I", 20, 8))),
    ("huge-l1-size", "open",
     patched("huge-l1-size", lambda i: i.put("I", 36, 0x7fffffff))),
    ("l1-size-too-small", "open",
     patched("l1-size-too-small", lambda i: i.put("I", 36, 0))),
    ("l1-table-past-end", "open",
     patched("l1-table-past-end", lambda i: i.put("Q", 40, past_end(i)))),
    ("l1-table-in-header", "open",
     patched("l1-table-in-header", lambda i: i.put("Q", 40, 0))),
    ("l1-table-misaligned", "open",
     patched("l1-table-misaligned",
             lambda i: i.put("Q", 40, i.l1_offset + 512))),
    ("refcount-table-past-end", "open",
     patched("refcount-table-past-end", lambda i: i.put("Q", 48, past_end(i)))),
    ("refcount-table-in-header", "open",
     patched("refcount-table-in-header", lambda i: i.put("Q", 48, 0))),
    ("refcount-table-huge", "open",
     patched("refcount-table-huge", lambda i: i.put("I", 56, 0x7fffffff))),
    ("refcount-order-huge", "open",
     patched("refcount-order-huge", lambda i: i.put("I", 96, 7))),
    ("header-length-small", "open",
     patched("header-length-small", lambda i: i.put("I", 100, 72))),
    ("header-length-huge", "open",
     patched("header-length-huge", lambda i: i.put("I", 100, 0x10000))),
    ("unknown-incompatible-bit", "open",
     patched("unknown-incompatible-bit", lambda i: i.put("Q", 72, 1 << 40))),
    ("encrypted", "open", patched("encrypted", lambda i: i.put("I", 32, 1))),
    ("backing-name-past-end", "open",
     patched("backing-name-past-end",
             lambda i: (i.put("Q", 8, 0xff00), i.put("I", 16, 1000)))),
    ("snapshots-past-end", "open",
     patched("snapshots-past-end",
             lambda i: (i.put("I", 60, 1), i.put("Q", 64, past_end(i))))),
    # Extensions.
    ("extension-length-past-cluster", "open",
     patched("extension-length-past-cluster",
             lambda i: i.put("I", i.ext[BITMAPS_MAGIC][0] + 4, 0x7ffffff0))),
    ("bitmaps-extension-bad-length", "open",
     patched("bitmaps-extension-bad-length",
             lambda i: i.put("I", i.ext[BITMAPS_MAGIC][0] + 4, 16))),
    ("bitmaps-extension-reserved", "open",
     patched("bitmaps-extension-reserved",
             lambda i: i.put("I", i.bm_ext + 4, 1))),
    ("bitmaps-zero-count", "open",
     patched("bitmaps-zero-count", lambda i: i.put("I", i.bm_ext, 0))),
    ("bitmaps-count-lies", "open",
     patched("bitmaps-count-lies", lambda i: i.put("I", i.bm_ext, 3))),
    ("bitmap-dir-size-lies-big", "open",
     patched("bitmap-dir-size-lies-big",
             lambda i: i.put("Q", i.bm_ext + 8, i.dir_size + 8))),
    ("bitmap-dir-size-lies-small", "open",
     patched("bitmap-dir-size-lies-small",
             lambda i: i.put("Q", i.bm_ext + 8, i.dir_size - 8))),
    ("bitmap-dir-size-huge", "open",
     patched("bitmap-dir-size-huge",
             lambda i: i.put("Q", i.bm_ext + 8, 1 << 40))),
    ("bitmap-dir-past-end", "open",
     patched("bitmap-dir-past-end",
             lambda i: i.put("Q", i.bm_ext + 16, past_end(i)))),
    ("bitmap-dir-in-header", "open",
     patched("bitmap-dir-in-header", _dir_into_header)),
    ("bitmap-dir-misaligned", "open",
     patched("bitmap-dir-misaligned",
             lambda i: i.put("Q", i.bm_ext + 16, i.dir_offset + 8))),
    # Bitmap directory entries.
    ("bitmap-name-size-past-end", "open",
     patched("bitmap-name-size-past-end",
             _set_dir_entry(1, "name_size", "H", 1000))),
    ("bitmap-name-size-zero", "open",
     patched("bitmap-name-size-zero", _set_dir_entry(0, "name_size", "H", 0))),
    ("bitmap-extra-data", "open",
     patched("bitmap-extra-data",
             _set_dir_entry(0, "extra_data_size", "I", 8))),
    ("bitmap-reserved-flags", "open",
     patched("bitmap-reserved-flags", _set_dir_entry(0, "flags", "I", 0x6))),
    ("bitmap-bad-type", "open",
     patched("bitmap-bad-type", _set_dir_entry(0, "type", "B", 2))),
    ("bitmap-granularity-huge", "open",
     patched("bitmap-granularity-huge",
             _set_dir_entry(0, "granularity_bits", "B", 63))),
    ("bitmap-table-size-wrong", "open",
     patched("bitmap-table-size-wrong",
             _set_dir_entry(0, "table_size", "I", 0x7ffffff))),
    # One cluster more than the image needs (b0: 1 -> 2), the table
    # still inside the file: QEMU refuses to load the bitmap, and so to
    # open the image; nothing may be written to it.
    ("bitmap-table-size-one-more", "open",
     patched("bitmap-table-size-one-more",
             _set_dir_entry(0, "table_size", "I", 2))),
    ("bitmap-table-past-end", "open",
     patched("bitmap-table-past-end",
             lambda i: i.put("Q", i.entries[0]["at"], past_end(i)))),
    ("bitmap-table-misaligned", "open",
     patched("bitmap-table-misaligned",
             lambda i: i.put("Q", i.entries[0]["at"],
                             i.entries[0]["table_offset"] + 8))),
    ("bitmap-table-in-header", "open",
     patched("bitmap-table-in-header",
             lambda i: i.put("Q", i.entries[0]["at"], 0))),
    ("bitmap-tables-overlap", "check",
     patched("bitmap-tables-overlap", _overlap_tables)),
    ("bitmap-table-over-l1", "check",
     patched("bitmap-table-over-l1", _table_over_l1)),
    ("bitmap-table-entry-past-end", "check",
     patched("bitmap-table-entry-past-end",
             lambda i: i.put("Q", _table_entry(i), past_end(i)))),
    ("bitmap-table-entry-reserved", "check",
     patched("bitmap-table-entry-reserved",
             lambda i: i.put("Q", _table_entry(i),
                             i.get("Q", _table_entry(i)) | 0x2))),
    ("bitmap-table-entry-in-header", "check",
     patched("bitmap-table-entry-in-header",
             lambda i: i.put("Q", _table_entry(i), 0x200))),
    # L1, L2 and refcount entries.
    ("l1-entry-past-end", "check",
     patched("l1-entry-past-end",
             lambda i: i.put("Q", i.l1_entry(0),
                             (1 << 63) | past_end(i)))),
    ("l1-entry-in-header", "check",
     patched("l1-entry-in-header",
             lambda i: i.put("Q", i.l1_entry(0), (1 << 63) | 0x200))),
    ("l1-entry-reserved", "check",
     patched("l1-entry-reserved",
             lambda i: i.put("Q", i.l1_entry(0),
                             i.get("Q", i.l1_entry(0)) | 0x1))),
    ("l2-entry-past-end", "check",
     patched("l2-entry-past-end",
             lambda i: i.put("Q", i.first_l2(), (1 << 63) | past_end(i)))),
    ("l2-entry-in-header", "check",
     patched("l2-entry-in-header",
             lambda i: i.put("Q", i.first_l2(), 1 << 63))),
    ("l2-entry-reserved", "check",
     patched("l2-entry-reserved",
             lambda i: i.put("Q", i.first_l2(),
                             i.get("Q", i.first_l2()) | 0x2))),
    ("refcount-entry-past-end", "check",
     patched("refcount-entry-past-end",
             lambda i: i.put("Q", i.reftable_offset, past_end(i)))),
    ("refcount-entry-in-header", "check",
     patched("refcount-entry-in-header",
             lambda i: i.put("Q", i.reftable_offset, 0x200))),
    ("refcount-entry-reserved", "check",
     patched("refcount-entry-reserved",
             lambda i: i.put("Q", i.reftable_offset,
                             i.get("Q", i.reftable_offset) | 0x1))),
    # Backing chains.
    ("backing-loop", "open", _backing_loop),
    ("backing-self", "open", _backing_self),
]


def crashed(rc, err):
    """A process killed by a signal, or a sanitizer report."""
    return rc < 0 or rc >= 128 or "Sanitizer" in err or \
        "runtime error:" in err


def write_all(d):
    """Every case (and the valid image) in D; returns the paths."""
    os.makedirs(d, exist_ok=True)
    paths = [make_valid(d)]
    for name, _, make in CASES:
        paths.append(make(d))
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: qcow2corpus.py DIR")
    for p in write_all(sys.argv[1]):
        print(p)
