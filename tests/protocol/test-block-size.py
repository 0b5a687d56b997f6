#!/usr/bin/python3
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

# nbdcbt always advertises NBD_INFO_BLOCK_SIZE (maximum payload 32 MiB),
# whether or not the client asked for it; the values obey the spec's rules.
import struct
import nbd
from nbdproto import *

# qemu-nbd behaves the same way, so it validates this test.
only("nbdcbt", "qemu-nbd")

with memory("1M") as srv:
    h = srv.connect(opt_mode=True)
    h.opt_info()
    mn = h.get_block_size(nbd.SIZE_MINIMUM)
    pref = h.get_block_size(nbd.SIZE_PREFERRED)
    mx = h.get_block_size(nbd.SIZE_MAXIMUM)
    check_eq(mx, 32 * 1024 * 1024, "maximum payload from INFO")
    check(mn >= 1 and mn <= 65536 and mn & (mn - 1) == 0,
          "minimum block size is a power of 2 <= 64K", "power of 2", mn)
    check(pref >= max(mn, 512) and pref & (pref - 1) == 0,
          "preferred is a power of 2 >= max(minimum, 512)", ">= 512", pref)
    check(mx >= pref, "maximum >= preferred", ">= %d" % pref, mx)
    h.opt_go()
    check_eq(h.get_block_size(nbd.SIZE_MAXIMUM), mx, "maximum after GO")
    h.shutdown()

    # By hand: GO asking for no info at all still gets INFO_BLOCK_SIZE.
    for infos in ((), (INFO_BLOCK_SIZE,)):
        with Raw(srv.sock) as r:
            r.start()
            reps = r.option(OPT_GO, Raw.info_data(b"", infos))
            check_eq(reps[-1][0], REP_ACK, "GO with infos %r" % (infos,))
            got = {struct.unpack(">H", p[:2])[0]: p for t, p in reps
                   if t == REP_INFO}
            check(INFO_EXPORT in got, "INFO_EXPORT sent", True, got.keys())
            bs = got.get(INFO_BLOCK_SIZE)
            check(bs is not None and len(bs) == 14,
                  "INFO_BLOCK_SIZE (14 bytes) sent for infos %r" % (infos,),
                  14, bs and len(bs))
            if bs:
                check_eq(struct.unpack(">HIII", bs)[3], 32 * 1024 * 1024,
                         "raw INFO_BLOCK_SIZE maximum")
            r.disc()

finish()
