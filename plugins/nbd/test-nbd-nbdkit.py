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

"""The nbd plugin in front of nbdkit: data, capabilities, block sizes and
base:allocation come through unchanged; the dirty filter on top tracks
the workload; shared=true, connections=N and TLS (PSK) to the upstream."""
import os
import subprocess

import nbd
from nbdcbttest import Server, extents, require, scratch_dir

require("nbdkit")
MiB = 1024 * 1024
SIZE = 16 * MiB
d = scratch_dir()


def workload(h):
    """Writes, zeroes, trims with every flag the plugin maps."""
    h.pwrite(b"\x11" * 65536, 1 * MiB)
    h.pwrite(b"\x22" * 4096, 3 * MiB, nbd.CMD_FLAG_FUA)
    h.pwrite(os.urandom(40 * MiB // 8), 8 * MiB)        # 5 MiB, one request
    h.zero(65536, 1 * MiB + 65536 // 2)
    h.zero(2 * MiB, 5 * MiB, nbd.CMD_FLAG_NO_HOLE)
    h.trim(65536, 14 * MiB)
    h.flush()
    h.cache(MiB, 0)


def dirty_map(h, name):
    return [(o, n) for o, n, f in extents(h, "qemu:dirty-bitmap:" + name)
            if f & 1]


with Server.nbdkit(["memory", "size=%d" % SIZE]) as up:
    args = ["--filter=dirty", "nbd", "socket=" + up.sock, "bitmap=b0:64k"]
    with Server.nbdcbt(args) as srv:
        h = srv.connect(["base:allocation", "qemu:dirty-bitmap:b0"])
        assert h.get_size() == SIZE
        for cap in ("can_flush", "can_fua", "can_trim", "can_zero",
                    "can_fast_zero", "can_cache", "can_multi_conn"):
            assert getattr(h, cap)() is True, cap
        assert dirty_map(h, "b0") == []
        workload(h)
        # Every request reached nbdkit: read it there directly.
        u = up.connect(["base:allocation"])
        assert h.pread(SIZE, 0) == u.pread(SIZE, 0)
        # base:allocation is nbdkit's own map.
        assert extents(h, "base:allocation") == \
            extents(u, "base:allocation")
        ours = [(o, n) for o, n, f in extents(h, "base:allocation")
                if f == 3]
        assert (14 * MiB, 65536) in ours or any(
            o <= 14 * MiB and o + n >= 14 * MiB + 65536 for o, n in ours)
        # The dirty map is exactly the workload, in 64 KiB granules.
        want = set()
        for off, ln in ((1 * MiB, 65536), (3 * MiB, 4096),
                        (8 * MiB, 5 * MiB), (1 * MiB + 32768, 65536),
                        (5 * MiB, 2 * MiB), (14 * MiB, 65536)):
            g = off // 65536
            while g * 65536 < off + ln:
                want.add(g)
                g += 1
        got = set()
        for o, n in dirty_map(h, "b0"):
            got.update(range(o // 65536, (o + n) // 65536))
        assert got == want, (sorted(got), sorted(want))
        # Reads past the end fail as the upstream's would.
        try:
            h.pread(512, SIZE)
            raise AssertionError("read past the end succeeded")
        except nbd.Error:
            pass
        h.shutdown()
        u.shutdown()

# Read-only and block sizes come from the upstream.
with Server.nbdkit(["-r", "--filter=blocksize-policy", "pattern", "size=8M",
                    "blocksize-minimum=512", "blocksize-preferred=16384",
                    "blocksize-maximum=1M"]) as up:
    with Server.nbdcbt(["nbd", "socket=" + up.sock]) as srv:
        h = srv.connect()
        assert h.is_read_only()
        assert h.get_block_size(nbd.SIZE_MINIMUM) == 512
        assert h.get_block_size(nbd.SIZE_PREFERRED) == 16384
        assert h.get_block_size(nbd.SIZE_MAXIMUM) == MiB
        u = up.connect()
        assert h.pread(MiB, 3 * MiB) == u.pread(MiB, 3 * MiB)
        try:
            h.pwrite(b"x" * 512, 0)
            raise AssertionError("write to a read-only upstream succeeded")
        except nbd.Error:
            pass
        h.shutdown()
        u.shutdown()

# A sparse upstream: holes and data in many extents.
with Server.nbdkit(["sparse-random", "size=64M", "seed=7"]) as up:
    with Server.nbdcbt(["nbd", "uri=" + up.uri]) as srv:
        h = srv.connect(["base:allocation"])
        u = up.connect(["base:allocation"])
        assert extents(h, "base:allocation") == extents(u, "base:allocation")
        assert h.pread(4 * MiB, 7 * MiB) == u.pread(4 * MiB, 7 * MiB)
        h.shutdown()
        u.shutdown()

# shared=true and a pool: several clients, one view.
for mode in (["shared=true"], ["connections=3"]):
    with Server.nbdkit(["memory", "size=%d" % SIZE]) as up:
        with Server.nbdcbt(["nbd", "socket=" + up.sock] + mode) as srv:
            hs = [srv.connect() for _ in range(4)]
            assert all(x.can_multi_conn() for x in hs)
            for i, x in enumerate(hs):
                x.pwrite(bytes([i + 1]) * 65536, i * 65536)
            hs[0].flush()
            for x in hs:
                for i in range(4):
                    assert x.pread(65536, i * 65536) == bytes([i + 1]) * 65536
            for x in hs:
                x.shutdown()

# TLS with a pre-shared key, through an nbds+unix URI and through
# tls=require tls-psk= tls-username=.
if subprocess.run(["sh", "-c", "command -v psktool"],
                  stdout=subprocess.DEVNULL).returncode == 0:
    keys = os.path.join(d, "keys.psk")
    subprocess.run(["psktool", "-u", "alice", "-p", keys], check=True,
                   stdout=subprocess.DEVNULL)
    with Server.nbdkit(["--tls=require", "--tls-psk=" + keys, "memory",
                        "size=1M"]) as up:
        uri = "nbds+unix://alice@/?socket=%s&tls-psk-file=%s" % (up.sock,
                                                                keys)
        with Server.nbdcbt(["nbd", "uri=" + uri]) as srv:
            h = srv.connect()
            h.pwrite(b"t" * 512, 0)
            assert h.pread(512, 0) == b"t" * 512
            h.shutdown()
        with Server.nbdcbt(["nbd", "socket=" + up.sock, "tls=require",
                            "tls-username=alice",
                            "tls-psk=" + keys]) as srv:
            h = srv.connect()
            assert h.pread(512, 0) == b"t" * 512
            h.shutdown()
        # Without TLS the upstream refuses: a clear start-up error.
        r = subprocess.run([os.environ["NBDCBT"], "-f", "-U",
                            os.path.join(d, "x.sock"), "nbd",
                            "socket=" + up.sock, "tls=off"],
                           stderr=subprocess.PIPE, text=True, timeout=60)
        assert r.returncode == 1, r
        assert "cannot connect to the upstream server" in r.stderr, r.stderr
