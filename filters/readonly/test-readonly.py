#!/usr/bin/python3
# readonly filter: the export is read-only, reads work, writes, trims and
# zeroes fail with EPERM and change nothing (checked with libnbd's
# strict mode off, so the requests really reach the server).
import errno
import os
import subprocess
import nbd
from nbdcbttest import Server, scratch_dir

d = scratch_dir()
img = os.path.join(d, "disk.img")
with open(img, "wb") as f:
    f.write(b"\x42" * 65536)
    f.truncate(1 << 20)

with Server.nbdcbt(["--filter=readonly", "file", img]) as srv:
    out = subprocess.run(["nbdinfo", "--can", "write", srv.uri])
    assert out.returncode == 2, "nbdinfo --can write: %d" % out.returncode

    h = srv.connect()
    assert h.is_read_only()
    assert not h.can_trim()
    assert h.pread(65536, 0) == b"\x42" * 65536

    # Send the forbidden requests anyway.
    h.set_strict_mode(0)
    for name, call in [("write", lambda: h.pwrite(b"x" * 512, 0)),
                       ("trim", lambda: h.trim(65536, 0)),
                       ("zero", lambda: h.zero(65536, 0))]:
        try:
            call()
            raise AssertionError(name + " succeeded on a read-only export")
        except nbd.Error as e:
            assert e.errnum == errno.EPERM, (name, e.errnum, e)
    assert h.pread(65536, 0) == b"\x42" * 65536
    h.flush()
    h.shutdown()

with open(img, "rb") as f:
    assert f.read(65536) == b"\x42" * 65536
