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

# Random garbage (seeded, so reproducible) at each stage of a connection:
# instead of client flags, as option data under random option numbers,
# and as requests in transmission.  Whatever the server replies, it must
# keep serving fresh connections and never crash.
import random
import struct
from nbdproto import *

rng = random.Random(20261122)
with memory("1M") as srv:
    by = srv.connect()
    for i in range(60):
        stage = i % 3
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2048)))
        try:
            with Raw(srv.sock, timeout=5) as r:
                if stage == 0:
                    r.greeting()
                    r.send(junk)
                elif stage == 1:
                    r.start()
                    for _ in range(rng.randint(1, 4)):
                        opt = rng.choice([rng.getrandbits(32), OPT_INFO,
                                          OPT_GO, OPT_LIST_META_CONTEXT,
                                          OPT_SET_META_CONTEXT, OPT_LIST])
                        data = junk[:rng.randint(0, len(junk))]
                        r.send_option(opt, data)
                        # Read what comes back: replies or a hang-up.
                        if opt != OPT_GO:
                            while True:
                                _, t, _ = r.read_option_reply()
                                if t not in (REP_SERVER, REP_INFO,
                                             REP_META_CONTEXT):
                                    break
                        else:
                            break
                else:
                    r.handshake(structured=rng.random() < 0.5)
                    # A plausible header with random fields, then junk.
                    r.request(rng.getrandbits(16) % 12, rng.getrandbits(16),
                              i, rng.getrandbits(20), rng.getrandbits(16))
                    r.send(junk)
        except (Closed, OSError, AssertionError):
            pass                # the server may refuse or hang up
        if i % 10 == 9:
            still_serving(srv, "after garbage round %d" % i)
    check_eq(by.pread(512, 0), bytes(512), "bystander connection")
    by.shutdown()
finish()
