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

"""Slow or stalled TLS clients against --handshake-limit: a client that
gets STARTTLS's ACK and then sends nothing, one that sends part of its
ClientHello and stalls, and one that completes TLS and then sends no
option are each dropped once the limit passes, with a message naming
the limit; a normal TLS client is served meanwhile."""

import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import nbd                                          # noqa: E402
from nbdcbttest import Server, scratch_dir    # noqa: E402

IHAVEOPT = 0x49484156454F5054
LIMIT = 2


def make_creds():
    d = tempfile.mkdtemp(dir=scratch_dir())
    subprocess.run(["bash", "-c", 'source "$1/tests/functions.sh"; '
                    'source "$2/tls-functions.sh"; make_x509 "$3"', "_",
                    os.environ["top_srcdir"],
                    os.path.dirname(os.path.abspath(__file__)), d],
                   check=True)
    return d


def starttls(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    s.recv(18, socket.MSG_WAITALL)
    s.sendall(struct.pack(">I", 3))
    s.sendall(struct.pack(">QII", IHAVEOPT, 5, 0))
    reply = s.recv(20, socket.MSG_WAITALL)
    assert struct.unpack(">QIII", reply)[2] == 1, reply
    return s


def dropped_within(s, seconds):
    """True if the server closes S within SECONDS (and not at once)."""
    t0 = time.time()
    try:
        while True:
            if not s.recv(4096):
                break
    except (ConnectionResetError, ssl.SSLError, OSError):
        pass
    took = time.time() - t0
    return took <= seconds, took


creds = make_creds()
srv = Server.nbdcbt(["memory", "size=1M"],
                    extra=["--tls=require", "--handshake-limit=%d" % LIMIT,
                           "--tls-certificates=" + creds + "/srv"])
failures = []
with srv:
    # 1. Silence after the ACK: the TLS handshake never starts.
    s1 = starttls(srv.sock)
    # 2. Part of a ClientHello (a TLS record header announcing 512 bytes,
    #    and 10 of them), then nothing.
    s2 = starttls(srv.sock)
    s2.sendall(b"\x16\x03\x01\x02\x00" + b"\x01\x00\x01\xfc\x03\x03" + b"\0" * 4)
    # 3. A complete TLS handshake, then no option.
    s3 = starttls(srv.sock)
    ctx = ssl.create_default_context(cafile=creds + "/cli/ca-cert.pem")
    s3 = ctx.wrap_socket(s3, server_hostname="localhost")
    # Meanwhile a normal client is served.
    h = nbd.NBD()
    h.set_uri_allow_local_file(True)
    h.connect_uri("nbds+unix:///?socket=%s&tls-certificates=%s/cli"
                  % (srv.sock, creds))
    assert h.get_size() == 1048576
    h.shutdown()
    for name, s in [("silent after STARTTLS", s1),
                    ("partial ClientHello", s2),
                    ("no option after TLS", s3)]:
        ok, took = dropped_within(s, LIMIT + 8)
        print("%s: dropped after %.1f s" % (name, took))
        if not ok:
            failures.append("%s: still connected after %.1f s" % (name, took))
if failures:
    print("FAIL:", "; ".join(failures))
    sys.exit(1)
