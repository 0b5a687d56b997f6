#!/usr/bin/env python3
# Damaged images: every one must be refused (read-only and read-write
# opens) with a clear message, without a crash, and left unchanged.
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile

builddir = os.environ["top_builddir"]
tool = os.path.join(builddir, "common/qcow2/qcow2-test-tool")
if shutil.which("qemu-img") is None:
    sys.exit(77)

d = tempfile.mkdtemp(prefix="qcow2-damaged.")


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def base(name, *opts):
    p = os.path.join(d, name)
    sh("qemu-img", "create", "-q", "-f", "qcow2", *opts, p, "8M")
    sh("qemu-io", "-f", "qcow2", "-c", "write 0 256k", "-c", "write 4M 64k", p)
    return p


def patch(p, off, fmt, val):
    with open(p, "r+b") as f:
        f.seek(off)
        f.write(struct.pack(fmt, val))


def read_u64(p, off):
    with open(p, "rb") as f:
        f.seek(off)
        return struct.unpack(">Q", f.read(8))[0]


def md5(p):
    with open(p, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


failures = 0


def expect_refused(desc, p, commands=(("read",), ("random",))):
    global failures
    before = md5(p)
    for c in commands:
        if c[0] == "read":
            args = [tool, "read", p, p + ".out"]
        elif c[0] == "random":
            model = p + ".model"
            with open(model, "wb") as f:
                f.truncate(8 << 20)
            args = [tool, "random", p, model, "1", "20"]
        else:
            args = [tool] + list(c) if c[0] != "bitmaps" else \
                [tool, "bitmaps", p] + list(c[1:])
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if r.returncode < 0 or r.returncode > 1 or "Sanitizer" in r.stderr:
            print("CRASH:", desc, args, r.returncode, r.stderr)
            failures += 1
        elif r.returncode == 0:
            print("NOT REFUSED:", desc, args)
            failures += 1
        elif "qcow2-test-tool:" not in r.stderr or len(r.stderr) < 30:
            print("NO CLEAR MESSAGE:", desc, r.stderr)
            failures += 1
        else:
            print("ok:", desc, "->", r.stderr.strip().splitlines()[-1])
    if md5(p) != before:
        print("CHANGED:", desc)
        failures += 1


p = base("magic.qcow2"); patch(p, 0, ">I", 0x12345678)
expect_refused("bad magic", p)
p = base("version.qcow2"); patch(p, 4, ">I", 4)
expect_refused("version 4", p)
p = base("cbits.qcow2"); patch(p, 20, ">I", 30)
expect_refused("cluster_bits 30", p)
p = base("l1size.qcow2"); patch(p, 36, ">I", 0x10000000)
expect_refused("huge l1_size", p)
p = base("l1small.qcow2"); patch(p, 36, ">I", 0)
expect_refused("l1 too small", p)
p = base("l1off.qcow2"); patch(p, 40, ">Q", 1 << 40)
expect_refused("L1 past end", p)
p = base("l1hdr.qcow2"); patch(p, 40, ">Q", 0)
expect_refused("L1 in header", p)
p = base("rtoff.qcow2"); patch(p, 48, ">Q", 12345)
expect_refused("refcount table unaligned", p)
p = base("rtsize.qcow2"); patch(p, 56, ">I", 1 << 20)
expect_refused("refcount table too large", p)
p = base("incompat.qcow2"); patch(p, 72, ">Q", 1 << 20)
expect_refused("unknown incompatible bit", p)
p = base("refbits.qcow2"); patch(p, 96, ">I", 7)
expect_refused("refcount_order 7", p)
p = base("hlen.qcow2"); patch(p, 100, ">I", 99)
expect_refused("header_length 99", p)
p = base("crypt.qcow2"); patch(p, 32, ">I", 1)
expect_refused("encrypted", p)
p = base("backsize.qcow2"); patch(p, 8, ">Q", 512); patch(p, 16, ">I", 5000)
expect_refused("backing_file_size 5000", p)
p = base("corrupt.qcow2"); patch(p, 72, ">Q", 2)
expect_refused("corrupt bit (writable open)", p, (("random",),))

# Entries inside the tables.
p = base("l1e.qcow2")
l1 = read_u64(p, 40)
patch(p, l1, ">Q", (1 << 63) | (1 << 45))
expect_refused("L1 entry past end", p)
p = base("l1res.qcow2")
l1 = read_u64(p, 40)
patch(p, l1, ">Q", read_u64(p, l1) | 0x100)
expect_refused("L1 entry reserved bits", p)
p = base("l2e.qcow2")
l2 = read_u64(p, read_u64(p, 40)) & 0x00fffffffffffe00
patch(p, l2, ">Q", (1 << 63) | 0)        # COPIED, offset 0
patch(p, l2 + 8, ">Q", (1 << 63) | 512)   # unaligned data offset
# Found when used (as in QEMU): reads of the damaged cluster fail.
expect_refused("L2 entry unaligned / reserved", p, (("read",),))
p = base("l2hdr.qcow2")
l2 = read_u64(p, read_u64(p, 40)) & 0x00fffffffffffe00
patch(p, l2 + 8, ">Q", (1 << 63))
patch(p, l2 + 8, ">Q", 1 << 63 | 0)
patch(p, l2, ">Q", (1 << 63) | 0x0)
expect_refused("L2 entry COPIED without offset", p, (("read",),))
p = base("rte.qcow2")
rt = read_u64(p, 48)
patch(p, rt, ">Q", 1 << 44)
expect_refused("refcount block past end", p)

# Bitmaps.
def with_bitmap(name):
    p = base(name)
    sh("qemu-img", "bitmap", "--add", p, "b0")
    sh("qemu-img", "bitmap", "--add", p, "b1")
    # Find the bitmaps extension.
    with open(p, "rb") as f:
        h = f.read(65536)
    off = struct.unpack(">I", h[100:104])[0]
    while True:
        magic, ln = struct.unpack(">II", h[off:off + 8])
        if magic == 0x23852875:
            return p, off + 8
        if magic == 0:
            raise Exception("no bitmaps extension")
        off += 8 + ((ln + 7) & ~7)


p, ext = with_bitmap("bmdirsize.qcow2")
patch(p, ext + 8, ">Q", 40)
expect_refused("bitmap directory size lies", p)
p, ext = with_bitmap("bmnb.qcow2")
patch(p, ext, ">I", 0)
expect_refused("zero bitmaps", p)
p, ext = with_bitmap("bmres.qcow2")
patch(p, ext + 4, ">I", 1)
expect_refused("bitmaps reserved field", p)
p, ext = with_bitmap("bmname.qcow2")
dirp = read_u64(p, ext + 16)
patch(p, dirp + 18, ">H", 1000)
expect_refused("name_size past the end", p)
p, ext = with_bitmap("bmoverlap.qcow2")
dirp = read_u64(p, ext + 16)
patch(p, dirp + 32, ">Q", read_u64(p, dirp))
expect_refused("overlapping bitmap tables", p)
p, ext = with_bitmap("bmflags.qcow2")
dirp = read_u64(p, ext + 16)
patch(p, dirp + 12, ">I", 4)
expect_refused("bitmap reserved flag", p)
p, ext = with_bitmap("bmtsize.qcow2")
dirp = read_u64(p, ext + 16)
patch(p, dirp + 8, ">I", 2)
expect_refused("bitmap table size not exact", p,
               (("bitmaps", "dump", "b0"),))

# Backing chains: a cycle and a missing file.
a = os.path.join(d, "cyc-a.qcow2")
b = os.path.join(d, "cyc-b.qcow2")
sh("qemu-img", "create", "-q", "-f", "qcow2", a, "8M")
sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", "cyc-a.qcow2", "-F",
   "qcow2", b)
sh("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "cyc-b.qcow2", "-F",
   "qcow2", a)
expect_refused("backing cycle", b)
m = os.path.join(d, "missing.qcow2")
sh("qemu-img", "create", "-q", "-f", "qcow2", m, "8M")
sh("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "nonexistent.qcow2",
   "-F", "qcow2", m)
expect_refused("missing backing file", m)

shutil.rmtree(d)
if failures:
    print(failures, "failures")
    sys.exit(1)
print("OK")
