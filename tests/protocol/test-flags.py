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

# Transmission flags of a writable memory export: flush, FUA, trim, zero,
# fast zero, cache, multi-conn, DF (only with structured replies); and
# what libnbd reports matches the raw flags.
import nbd
from nbdproto import *

with memory("1M") as srv:
    h = srv.connect()
    want = {"can_flush": True, "can_fua": True, "can_trim": True,
            "can_zero": True, "can_fast_zero": True, "can_cache": True,
            "can_multi_conn": True, "can_df": True, "is_read_only": False}
    if SERVER == "qemu-nbd":
        del want["can_multi_conn"]   # qemu-nbd 7.2: only for read-only
    for name, v in want.items():
        check_eq(bool(getattr(h, name)()), v, name)
    h.shutdown()

    h = srv.connect(structured=False)
    check(not h.can_df(), "no DF without structured replies", False, True)
    h.shutdown()

    with Raw(srv.sock) as r:
        size, eflags, _, _ = r.handshake()
        check(eflags & EF_HAS_FLAGS, "HAS_FLAGS", 1, eflags)
        check(not eflags & EF_SEND_FAST_ZERO or
              eflags & EF_SEND_WRITE_ZEROES,
              "FAST_ZERO only with WRITE_ZEROES", "both", hex(eflags))
        check(not eflags & ~0xdff, "no unknown flag bits (incl. RESIZE)",
              "bits 0-8,10,11 only", hex(eflags))
        r.disc()
finish()
