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

# The fixed newstyle handshake by hand: greeting, GO with and without
# NO_ZEROES, EXPORT_NAME with and without NO_ZEROES (124 bytes of padding
# only without), ABORT.
import struct
from nbdproto import *

SIZE = 1024 * 1024
with memory("1M") as srv:
    # Greeting: NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE | NO_ZEROES.
    with Raw(srv.sock) as r:
        hflags = r.greeting()
        check_eq(hflags, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES,
                 "handshake flags")
        r.client_flags(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
        reps = r.option(OPT_GO, Raw.info_data())
        check_eq(reps[-1], (REP_ACK, b""), "GO final reply is a bare ACK")
        infos = {struct.unpack(">H", p[:2])[0]: p for t, p in reps
                 if t == REP_INFO}
        exp = infos.get(INFO_EXPORT)
        check(exp is not None and len(exp) == 12,
              "INFO_EXPORT is 12 bytes", 12, exp and len(exp))
        size, eflags = struct.unpack(">QH", exp[2:])
        check_eq(size, SIZE, "size in INFO_EXPORT")
        check(eflags & EF_HAS_FLAGS, "HAS_FLAGS set", 1, eflags)
        check(not eflags & EF_SEND_DF,
              "no SEND_DF without structured replies", 0, eflags)
        for t, p in reps:
            check(t in (REP_INFO, REP_ACK), "GO reply types", "INFO/ACK", t)
        # Straight into transmission: no padding after the ACK.
        r.request(CMD_READ, cookie=0xdeadbeefcafe, offset=512, length=512)
        check_eq(r.reply(512), ("simple", 0xdeadbeefcafe, 0, [bytes(512)]),
                 "first READ after GO")
        r.disc()

    # INFO then GO asking for NAME, DESCRIPTION, BLOCK_SIZE and an unknown
    # info type (ignored): well-formed replies, the same both times.
    with Raw(srv.sock) as r:
        r.start()
        asked = Raw.info_data(b"", (INFO_NAME, INFO_DESCRIPTION,
                                    INFO_BLOCK_SIZE, 0x1234))
        seen = []
        for opt in (OPT_INFO, OPT_GO):
            reps = r.option(opt, asked)
            check_eq(reps[-1], (REP_ACK, b""), "final reply to %d" % opt)
            infos = {}
            for t, p in reps[:-1]:
                check_eq(t, REP_INFO, "reply type to %d" % opt)
                ty = struct.unpack(">H", p[:2])[0]
                check(ty in (INFO_EXPORT, INFO_NAME, INFO_DESCRIPTION,
                             INFO_BLOCK_SIZE), "known info type", "0-3", ty)
                infos[ty] = p
            if INFO_BLOCK_SIZE in infos:
                bs = infos[INFO_BLOCK_SIZE]
                if check_eq(len(bs), 14, "INFO_BLOCK_SIZE length"):
                    mn, pref, mx = struct.unpack(">III", bs[2:])
                    check(mn & (mn - 1) == 0 and 1 <= mn <= 65536 and
                          pref & (pref - 1) == 0 and pref >= max(mn, 512)
                          and (mx >= pref or mx == 0xffffffff),
                          "INFO_BLOCK_SIZE values", "spec rules",
                          (mn, pref, mx))
            if INFO_NAME in infos:
                infos[INFO_NAME][2:].decode("utf-8")
            check_eq(len(infos.get(INFO_EXPORT, b"")), 12, "INFO_EXPORT")
            seen.append(infos)
        check_eq(seen[0], seen[1], "INFO and GO give the same information")
        r.request(CMD_FLUSH, 0, 9)
        check_eq(r.reply()[:3], ("simple", 9, 0), "FLUSH after GO")
        r.disc()

    # GO with the old client flag only (no NO_ZEROES): same replies.
    with Raw(srv.sock) as r:
        r.greeting()
        r.client_flags(FLAG_FIXED_NEWSTYLE)
        reps = r.option(OPT_GO, Raw.info_data())
        check_eq(reps[-1][0], REP_ACK, "GO without NO_ZEROES")
        r.request(CMD_READ, cookie=2, offset=0, length=16)
        check_eq(r.reply(16), ("simple", 2, 0, [bytes(16)]),
                 "READ after GO without NO_ZEROES")
        r.disc()

    # EXPORT_NAME: u64 size, u16 flags, then 124 zero bytes unless the
    # client set NO_ZEROES.
    for cflags, pad in ((FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 0),
                        (FLAG_FIXED_NEWSTYLE, 124)):
        with Raw(srv.sock) as r:
            r.greeting()
            r.client_flags(cflags)
            r.send_option(OPT_EXPORT_NAME, b"")
            size, eflags = struct.unpack(">QH", r.recv(10))
            check_eq(size, SIZE, "EXPORT_NAME size (client flags %d)"
                     % cflags)
            check(eflags & EF_HAS_FLAGS, "EXPORT_NAME flags", 1, eflags)
            if pad:
                check_eq(r.recv(pad), bytes(pad), "124 bytes of zeroes")
            r.request(CMD_WRITE, cookie=3, offset=4096, length=3,
                      data=b"abc")
            check_eq(r.reply()[:3], ("simple", 3, 0),
                     "WRITE after EXPORT_NAME (pad %d)" % pad)
            r.request(CMD_READ, cookie=4, offset=4096, length=3)
            check_eq(r.reply(3), ("simple", 4, 0, [b"abc"]),
                     "READ after EXPORT_NAME (pad %d)" % pad)
            r.disc()

    # ABORT: ACK (the client may also just hang up), then close.
    with Raw(srv.sock) as r:
        r.start()
        r.send_option(OPT_ABORT)
        try:
            opt, rtype, p = r.read_option_reply()
            check_eq((opt, rtype), (OPT_ABORT, REP_ACK), "ABORT reply")
        except Closed:
            pass                # allowed: server closed without a reply
        check(r.closed_by_server(), "server closes after ABORT",
              "EOF", "still open")

    # ABORT with data (to be ignored) and a client that hangs up at once.
    with Raw(srv.sock) as r:
        r.start()
        r.send_option(OPT_ABORT, b"ignored")
    with Raw(srv.sock) as r:
        r.start()
        r.send_option(OPT_LIST)
        reps = []
        while True:
            opt, t, p = r.read_option_reply()
            reps.append((t, p))
            if t != REP_SERVER:
                break
        check_eq(reps[-1][0], REP_ACK, "LIST ends with ACK")
        for t, p in reps[:-1]:
            n = struct.unpack(">I", p[:4])[0]
            check(n <= len(p) - 4, "REP_SERVER name length fits", len(p) - 4,
                  n)
        r.send_option(OPT_ABORT)
    still_serving(srv)
finish()
