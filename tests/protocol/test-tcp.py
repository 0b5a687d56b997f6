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

# TCP on 127.0.0.1 (-p PORT -i 127.0.0.1): libnbd connects with an nbd://
# URI, reads and writes; the raw handshake works the same over TCP.
import os
import socket
import subprocess
import tempfile
import nbd
from nbdproto import *

only("nbdcbt", "nbdkit")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


d = tempfile.mkdtemp(dir=scratch_dir())
pid = os.path.join(d, "pid")
port = free_port()
if SERVER == "nbdcbt":
    argv = [nbdcbttest.NBDCBT, "-f", "-p", str(port), "-i", "127.0.0.1",
            "-P", pid, "memory", "size=1M"]
else:
    argv = ["nbdkit", "-f", "-p", str(port), "-i", "127.0.0.1", "-P", pid,
            "memory", "1M"]
proc = subprocess.Popen(argv)
try:
    nbdcbttest._wait_for(pid, proc)
    h = nbd.NBD()
    h.connect_uri("nbd://127.0.0.1:%d/" % port)
    check_eq(h.get_size(), 1 << 20, "size over TCP")
    h.pwrite(b"tcp!" * 1024, 4096)
    check_eq(h.pread(4096, 4096), b"tcp!" * 1024, "read back over TCP")
    h.shutdown()

    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    r = Raw.__new__(Raw)
    r.s, r.structured = s, False
    size, eflags, _, _ = r.handshake()
    r.request(CMD_READ, 0, 1, 4096, 4)
    kind, c, err, chunks = r.reply(4)
    check_eq((c, err, read_data(chunks, 4096, 4)), (1, 0, b"tcp!"),
             "raw READ over TCP")
    r.disc()
    r.close()
finally:
    proc.terminate()
    rc = proc.wait(30)
check(rc == 0 or SERVER != "nbdcbt", "exit status on SIGTERM", 0, rc)
finish()
