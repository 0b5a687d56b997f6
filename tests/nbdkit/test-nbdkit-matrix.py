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

"""nbdkit's own plugins and filters (Debian's nbdkit 1.32 .so files) in
nbdcbt's chain, under the dirty filter: for each chain the same workload
runs against nbdcbt and against the same chain under real nbdkit; data and
base:allocation must be the same, and nbdcbt's dirty map must be exactly
the granules the workload touched."""
import errno
import os
import struct
import subprocess

import nbd
from nbdcbttest import Server, extents, require, scratch_dir

require("nbdkit")
KiB, MiB = 1024, 1024 * 1024
GRAN = 64 * KiB
d = scratch_dir()
plugindir = subprocess.run(["pkg-config", "--variable=plugindir", "nbdkit"],
                           stdout=subprocess.PIPE, text=True).stdout.strip()


def mbr_disk(path, size):
    """A raw disk with an MBR and one partition from 1 MiB to 7 MiB."""
    with open(path, "wb") as f:
        f.truncate(size)
        entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0",
                            2048, 6 * 2048)
        f.seek(446)
        f.write(entry)
        f.seek(510)
        f.write(b"\x55\xaa")
        f.seek(1 * MiB)
        f.write(b"P" * 4096)


def workload(h):
    """Requests every chain gets when it is writable, as (offset, length)
    of what they change."""
    size = h.get_size()
    touched = []

    def do(fn, off, ln):
        if off + ln <= size:
            fn()
            touched.append((off, ln))
    do(lambda: h.pwrite(b"\xa5" * (4 * KiB), 4 * KiB), 4 * KiB, 4 * KiB)
    do(lambda: h.pwrite(b"\x5a" * (200 * KiB), 1 * MiB + 100),
       1 * MiB + 100, 200 * KiB)
    do(lambda: h.pwrite(bytes(range(256)) * 256, 3 * MiB, nbd.CMD_FLAG_FUA),
       3 * MiB, 64 * KiB)
    if h.can_zero():
        do(lambda: h.zero(128 * KiB, 2 * MiB), 2 * MiB, 128 * KiB)
        do(lambda: h.zero(64 * KiB, 5 * MiB, nbd.CMD_FLAG_NO_HOLE),
           5 * MiB, 64 * KiB)
    if h.can_trim():
        do(lambda: h.trim(64 * KiB, 6 * MiB), 6 * MiB, 64 * KiB)
    if h.can_flush():
        h.flush()
    return touched


def granules(ranges, size):
    g = set()
    for off, ln in ranges:
        end = min(off + ln, size)
        g.update(range(off // GRAN, (end + GRAN - 1) // GRAN))
    return g


def read_all(h):
    size, out, off = h.get_size(), b"", 0
    while off < size:
        n = min(4 * MiB, size - off)
        out += h.pread(n, off)
        off += n
    return out


def rewrite(h):
    """For plugins that check writes (sparse-random): write back what is
    there."""
    buf = h.pread(128 * KiB, 1 * MiB + 512)
    h.pwrite(buf, 1 * MiB + 512)
    h.flush()
    return [(1 * MiB + 512, 128 * KiB)]


def run_case(name, plugin, pargs, filters, fargs=(), files=(),
             work=workload):
    """One chain under nbdkit and under nbdcbt (the dirty filter on top)."""
    nk_dir = os.path.join(d, name + ".nbdkit")
    cb_dir = os.path.join(d, name + ".nbdcbt")
    for x in (nk_dir, cb_dir):
        os.mkdir(x)
        for f in files:   # made the same way for each server
            MAKERS[f](os.path.join(x, f))

    def args(where):
        return [a.replace("@DIR@", where) for a in list(pargs) + list(fargs)]
    nk_argv = ["--filter=" + f for f in filters] + [plugin] + args(nk_dir)
    cb_argv = (["--filter=dirty"] + ["--filter=nbdkit:" + f for f in filters]
               + ["nbdkit:" + plugin] + args(cb_dir) + ["bitmap=b0:64k"])
    with Server.nbdkit(nk_argv) as nk, Server.nbdcbt(cb_argv) as cb:
        a = cb.connect(["base:allocation", "qemu:dirty-bitmap:b0"])
        b = nk.connect(["base:allocation"])
        try:
            check(name, a, b, work)
        finally:
            a.shutdown()
            b.shutdown()


def check(name, a, b, work):
    if True:
        size = a.get_size()
        assert size == b.get_size(), (name, size, b.get_size())
        for cap in ("is_read_only", "can_flush", "can_trim", "can_zero",
                    "can_fua", "can_multi_conn", "can_cache"):
            assert getattr(a, cap)() == getattr(b, cap)(), (name, cap)
        touched = []
        if not a.is_read_only():
            touched = work(a)
            assert work(b) == touched, name
        if size:
            ea, eb = (extents(a, "base:allocation"),
                      extents(b, "base:allocation"))
            assert ea == eb, (name, [x for x in ea if x not in eb],
                              [x for x in eb if x not in ea])
            dirty = [(o, n) for o, n, fl in
                     extents(a, "qemu:dirty-bitmap:b0") if fl & 1]
            assert granules(dirty, size) == granules(touched, size), \
                (name, dirty, touched)
        # Data last: reading changes what some file systems report as
        # allocated (ext4's unwritten extents become data once cached),
        # and nbdcbt does not read holes.
        assert read_all(a) == read_all(b), name + ": data differs"
        print("ok:", name, "(%d bytes, %d writes)" % (size, len(touched)))


def data_disk(path):
    with open(path, "wb") as f:
        f.truncate(8 * MiB)
        f.seek(2 * MiB)
        f.write(b"D" * 300 * KiB)


MAKERS = {"mbr.raw": lambda p: mbr_disk(p, 8 * MiB), "disk.raw": data_disk}
data_disk(os.path.join(d, "disk.raw"))

# Plugins, with nothing between them and the dirty filter.
run_case("file", "file", ["@DIR@/disk.raw"], [], files=["disk.raw"])
run_case("memory", "memory", ["size=8M"], [])
run_case("null", "null", ["size=8M"], [])
run_case("pattern", "pattern", ["size=8M"], [])
run_case("data", "data", ["data=1 2 3 @0x100000 0xff*4096 @0x300000 9",
                          "size=8M"], [])
run_case("sparse-random", "sparse-random", ["size=32M", "seed=4321"], [],
         work=rewrite)
run_case("zero", "zero", [], [])
# The eval plugin keeps the keys of its .config (nbdkit guarantees them
# for the plugin's lifetime): a freed key is a use-after-free in an
# --enable-sanitizers build.
run_case("eval", "eval", ["get_size=echo 1048576",
                          "pread=head -c $3 /dev/zero"], [])

# Filters between the dirty filter and a plugin.
mem = ("memory", ["size=8M"])
for f, fargs in (("cow", []),
                 ("cache", ["cache=writeback"]),
                 ("blocksize", ["minblock=4k", "maxdata=64k"]),
                 ("delay", ["rdelay=1ms", "wdelay=1ms"]),
                 ("error", ["error=EIO", "error-rate=100%",
                            "error-file=@DIR@/trigger"]),
                 ("offset", ["offset=1M", "range=6M"]),
                 ("readahead", []),
                 ("retry", ["retries=2", "retry-delay=1"]),
                 ("log", ["logfile=@DIR@/log"]),
                 ("stats", ["statsfile=@DIR@/stats"])):
    run_case(f, mem[0], mem[1], [f], fargs)
run_case("partition", "file", ["@DIR@/mbr.raw"], ["partition"],
         ["partition=1"], files=["mbr.raw"])
run_case("cow-over-file", "file", ["@DIR@/disk.raw"], ["cow"],
         files=["disk.raw"])
# Several nbdkit filters in one chain, over sparse data.
run_case("stack", "sparse-random", ["size=32M", "seed=99"],
         ["readahead", "cache", "blocksize", "cow"], ["minblock=512"],
         work=rewrite)

# The file under the cow filter is unchanged; under nothing, changed.
with open(os.path.join(d, "disk.raw"), "rb") as f:
    orig = f.read()
for case, same in (("cow-over-file", True), ("file", False)):
    with open(os.path.join(d, case + ".nbdcbt", "disk.raw"), "rb") as f:
        assert (f.read() == orig) == same, case

# The log and stats filters wrote their files under nbdcbt too.
for case, fn in (("log", "log"), ("stats", "stats")):
    p = os.path.join(d, case + ".nbdcbt", fn)
    assert os.path.getsize(p) > 0, p

# The error filter: once its trigger file exists, both fail reads with
# the error it was told to inject.
for server in ("nbdkit", "nbdcbt"):
    where = os.path.join(d, "err-" + server)
    os.mkdir(where)
    fa = ["error=ENOSPC", "error-pwrite-rate=100%",
          "error-file=" + where + "/trigger"]
    if server == "nbdkit":
        srv = Server.nbdkit(["--filter=error", "memory", "size=1M"] + fa)
    else:
        srv = Server.nbdcbt(["--filter=dirty", "--filter=nbdkit:error",
                             "nbdkit:memory", "size=1M", "bitmap=b0"] + fa)
    with srv:
        h = srv.connect()
        h.pwrite(b"1" * 512, 0)
        open(where + "/trigger", "w").close()
        try:
            h.pwrite(b"2" * 512, 0)
            raise AssertionError(server + ": injected error not seen")
        except nbd.Error as e:
            assert e.errnum == errno.ENOSPC, (server, e)
        assert h.pread(512, 0) == b"1" * 512
        h.shutdown()
print("ok: error injection")
