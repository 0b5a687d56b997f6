#!/usr/bin/python3
# A read-only export (-r): READ_ONLY flag, can_write false, no TRIM or
# WRITE_ZEROES advertised; writes, trims and zeroes sent anyway -> EPERM.
import struct
import nbd
from nbdproto import *

with memory("1M", readonly=True) as srv:
    h = srv.connect()
    check(h.is_read_only(), "is_read_only", True, False)
    check(not h.can_trim(), "no trim on a read-only export", False, True)
    check(not h.can_zero(), "no zero on a read-only export", False, True)
    check_eq(h.pread(4096, 0), bytes(4096), "read works")
    h.set_strict_mode(0)
    # (qemu-nbd 7.2 says EINVAL where the spec says EPERM.)
    EPERMS = {1} if SERVER != "qemu-nbd" else {1, 22}
    expect_errno(lambda: h.pwrite(b"w" * 512, 0), EPERMS, "write")
    expect_errno(lambda: h.pwrite(b"w" * 512, 0, nbd.CMD_FLAG_FUA), {1, 22},
                 "write with FUA")
    expect_errno(lambda: h.trim(512, 0), {1, 22}, "trim")
    expect_errno(lambda: h.zero(512, 0), {1, 22}, "zero")
    check_eq(h.pread(4096, 0), bytes(4096), "nothing was written")
    if h.can_flush():
        h.flush()
    h.shutdown()

    # By hand: the WRITE payload is consumed and EPERM comes back.
    with Raw(srv.sock) as r:
        size, eflags, _, _ = r.handshake()
        check(eflags & EF_READ_ONLY, "READ_ONLY transmission flag", 1, eflags)
        r.request(CMD_WRITE, 0, 5, 0, 512, b"w" * 512)
        c, err = r.reply()[1:3]
        check(c == 5 and err in EPERMS, "raw WRITE -> EPERM", (5, EPERM),
              (c, err))
        r.request(CMD_READ, 0, 6, 0, 512)
        kind, c, err, chunks = r.reply()
        check_eq((c, err, read_data(chunks, 0, 512)), (6, 0, bytes(512)),
                 "READ after the refused WRITE")
        r.disc()
    still_serving(srv)
finish()
