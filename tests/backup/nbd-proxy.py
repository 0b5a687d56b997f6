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

# A byte-forwarding proxy between NBD clients and a server on Unix
# sockets that misbehaves on cue, to interrupt a backup at a known point:
#
#   nbd-proxy.py LISTEN UPSTREAM LIMIT MODE MARKER PIDFILE
#
# Each client connection is forwarded to UPSTREAM.  Once more than LIMIT
# bytes went from the server to a client, MARKER is created and then
# with MODE "stall" nothing more is forwarded to that client (its reads
# hang, the connection stays open), with MODE "drop" both sides of the
# connection are closed.  PIDFILE is written once LISTEN accepts.
import os
import socket
import sys
import threading

listen_path, upstream, limit, mode, marker, pidfile = sys.argv[1:7]
limit = int(limit)
assert mode in ("stall", "drop")


def forward(src, dst, count):
    done = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if count and done + len(data) > limit:
                open(marker, "w").close()
                if mode == "stall":
                    threading.Event().wait()    # forever
                src.shutdown(socket.SHUT_RDWR)
                dst.shutdown(socket.SHUT_RDWR)
                break
            dst.sendall(data)
            done += len(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(client):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.connect(upstream)
    for args in ((client, server, False), (server, client, True)):
        threading.Thread(target=forward, args=args, daemon=True).start()


sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(listen_path)
sock.listen(8)
with open(pidfile + ".tmp", "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(pidfile + ".tmp", pidfile)
while True:
    conn, _ = sock.accept()
    serve(conn)
