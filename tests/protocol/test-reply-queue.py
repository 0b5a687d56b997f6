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

# Thousands of small requests pipelined in one burst: each gets exactly
# one reply, whole and unmixed with the others.  nbdcbt lets the
# acknowledgements of writes and flushes that find another reply being
# sent wait in a queue for that reply's sender to send, several at a
# time (server/transport.c); a reply lost or sent twice there, or one
# queued inside another, shows here as a missing or repeated cookie or a
# bad magic.  Larger replies (reads of 4 KiB) take the lock as before and
# are interleaved with the queued ones.
import struct
import threading
from nbdproto import *

N = 4000
SIZE = 1 << 20


def next_reply(r, expect):
    """One whole reply: (cookie, error).  A simple reply carries data only
    for a read, which its cookie tells."""
    magic = struct.unpack(">I", r.recv(4))[0]
    if magic == SIMPLE_MAGIC:
        err, cookie = struct.unpack(">IQ", r.recv(12))
        check(cookie in expect, "simple reply to a cookie that was sent",
              "one of ours", cookie)
        if expect.get(cookie) == "read" and err == 0:
            r.recv(4096)
        return cookie, err
    check_eq(magic, STRUCTURED_MAGIC, "reply magic")
    err = 0
    while True:
        flags, rtype, cookie, ln = struct.unpack(">HHQI", r.recv(16))
        check(cookie in expect, "chunk of a cookie that was sent",
              "one of ours", cookie)
        payload = r.recv(ln) if ln else b""
        if rtype & 0x8000:
            err = struct.unpack(">I", payload[:4])[0]
        if flags & REPLY_FLAG_DONE:
            return cookie, err
        check_eq(struct.unpack(">I", r.recv(4))[0], STRUCTURED_MAGIC,
                 "next chunk's magic")
with memory("1M") as srv:
    for structured in (True, False):
        with Raw(srv.sock, timeout=60) as r:
            r.handshake(structured=structured)
            burst = bytearray()
            expect = {}
            for i in range(N):
                cookie = 10000 + i
                if i % 97 == 0:
                    burst += struct.pack(">IHHQQI", REQUEST_MAGIC, 0,
                                         CMD_READ, cookie, 4096 * (i % 64),
                                         4096)
                    expect[cookie] = "read"
                elif i % 50 == 0:
                    burst += struct.pack(">IHHQQI", REQUEST_MAGIC, 0,
                                         CMD_FLUSH, cookie, 0, 0)
                    expect[cookie] = "flush"
                else:
                    # Byte i of the last 4000: each written once.
                    burst += struct.pack(">IHHQQI", REQUEST_MAGIC, 0,
                                         CMD_WRITE, cookie,
                                         SIZE - N + i, 1)
                    burst += bytes([i % 251 + 1])
                    expect[cookie] = "write"
            # Send from a thread: the replies must be read meanwhile, or
            # both sides could block on full socket buffers.
            sender = threading.Thread(target=r.send, args=(bytes(burst),))
            sender.start()
            seen = {}
            for _ in range(N):
                cookie, err = next_reply(r, expect)
                check_eq(err, 0, "error of %s %d" % (expect.get(cookie),
                                                    cookie))
                seen[cookie] = seen.get(cookie, 0) + 1
            sender.join()
            check_eq(sorted(c for c, n in seen.items() if n != 1), [],
                     "cookies answered other than once")
            check_eq(len(seen), N, "cookies answered")
        h = srv.connect()
        got = h.pread(N, SIZE - N)
        want = bytes(0 if i % 97 == 0 or i % 50 == 0 else i % 251 + 1
                     for i in range(N))
        check(got == want, "every byte written by the burst")
        h.shutdown()
finish()
