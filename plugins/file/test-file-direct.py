#!/usr/bin/python3
# file plugin with cache=none (O_DIRECT): aligned and unaligned round
# trips, the advertised minimum block size, zeroes.  Skipped only where
# the file system does not support O_DIRECT.
import errno
import os
import nbd
from nbdcbttest import Server, scratch_dir, skip

MiB = 1 << 20
d = scratch_dir()
img = os.path.join(d, "disk.img")
with open(img, "wb") as f:
    f.truncate(4 * MiB)
try:
    os.close(os.open(img, os.O_RDONLY | os.O_DIRECT))
except OSError as e:
    if e.errno == errno.EINVAL:
        skip("the file system of %s does not support O_DIRECT" % d)
    raise

with Server.nbdcbt(["file", img, "cache=none", "fadvise=random"]) as srv:
    h = srv.connect()
    minimum = h.get_block_size(nbd.SIZE_MINIMUM)
    assert minimum in (512, 1024, 2048, 4096), minimum
    assert h.get_block_size(nbd.SIZE_PREFERRED) >= minimum

    # Aligned.
    a = os.urandom(MiB)
    h.pwrite(a, MiB)
    assert h.pread(MiB, MiB) == a
    h.pwrite(a[:65536], 0, nbd.CMD_FLAG_FUA)
    assert h.pread(65536, 0) == a[:65536]

    # Unaligned offsets and lengths: the server may refuse them cleanly
    # (EINVAL, changing nothing) since it advertised the minimum; if it
    # passes them on, the plugin must get the data right and leave the
    # neighbours alone.  libnbd refuses to send them in strict mode.
    h.set_strict_mode(0)
    try:
        h.pwrite(b"abc", MiB + 1)
        unaligned = True
    except nbd.Error as e:
        assert e.errnum == errno.EINVAL, e
        assert h.pread(minimum, MiB) == a[:minimum]
        unaligned = False
        print("server refuses unaligned requests: unaligned part skipped")
    if unaligned:
        h.pwrite(b"x" * 5000, 3 * MiB - 2500)
        assert h.pread(5, MiB) == a[:1] + b"abc" + a[4:5]
        assert h.pread(5000, 3 * MiB - 2500) == b"x" * 5000
        assert h.pread(MiB - 4, MiB + 4) == a[4:]
        h.zero(10000, MiB + 100)
        got = h.pread(MiB, MiB)
        assert got[:100] == (a[:1] + b"abc" + a[4:100])
        assert got[100:10100] == bytes(10000)
        assert got[10100:] == a[10100:]
        a = a[:1] + b"abc" + a[4:]

    # Aligned zero, with FUA.
    h.zero(2 * minimum, MiB + minimum, nbd.CMD_FLAG_FUA)
    got = h.pread(MiB, MiB)
    assert got[minimum:3 * minimum] == bytes(2 * minimum)
    assert got[3 * minimum:] == a[3 * minimum:]
    h.flush()
    h.shutdown()

with open(img, "rb") as f:
    f.seek(MiB)
    assert f.read(4) == a[:4]
