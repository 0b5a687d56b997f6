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

"""An HTTP proxy in front of the test's S3 server that injects faults,
to see nbdcbt-backup retry them.  The requests it lets through reach the
real server unchanged (the Host header too, so signatures still check).

  s3-fault-proxy.py PORTFILE UPSTREAM_PORT [--fail-every N]
                    [--stall METHOD:COUNT:SECONDS]

--fail-every N      every Nth request is answered 503 SlowDown
--stall M:C:S       the first C requests of method M get no answer for S
                    seconds, then the connection is closed
Writes the port it listens on into PORTFILE.  Counts go to stderr.
"""

import http.client
import http.server
import socketserver
import sys
import threading
import time

portfile, upstream = sys.argv[1], int(sys.argv[2])
fail_every = 0
stall_method, stall_count, stall_seconds = None, 0, 0.0
args = sys.argv[3:]
while args:
    if args[0] == "--fail-every":
        fail_every = int(args[1])
    elif args[0] == "--stall":
        m, c, s = args[1].split(":")
        stall_method, stall_count, stall_seconds = m, int(c), float(s)
    args = args[2:]

lock = threading.Lock()
counts = {"requests": 0, "failed": 0, "stalled": 0}

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown'
             b'</Code><Message>injected by the test</Message></Error>')


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def handle_any(self):
        global stall_count
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with lock:
            counts["requests"] += 1
            k = counts["requests"]
            stall = stall_method == self.command and stall_count > 0
            if stall:
                stall_count -= 1
                counts["stalled"] += 1
            fail = not stall and fail_every and k % fail_every == 0
            if fail:
                counts["failed"] += 1
            print(f"proxy: {counts}", file=sys.stderr, flush=True)
        if stall:
            time.sleep(stall_seconds)
            self.close_connection = True
            return
        if fail:
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOW_DOWN)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(SLOW_DOWN)
            return
        conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("connection", "keep-alive")}
        conn.request(self.command, self.path, body=body or None,
                     headers=headers)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status, r.reason)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection",
                                 "content-length", "keep-alive"):
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length",
                             r.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
