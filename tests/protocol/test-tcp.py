#!/usr/bin/python3
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
