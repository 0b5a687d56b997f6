#!/usr/bin/python3
# Transmission flags of a writable memory export: flush, FUA, trim, zero,
# fast zero, cache, multi-conn, DF (only with structured replies); and
# what libnbd reports matches the raw flags.
import nbd
from nbdproto import *

with memory("1M") as srv:
    h = srv.connect()
    want = {"can_flush": True, "can_fua": True, "can_trim": True,
            "can_zero": True, "can_fast_zero": True, "can_cache": True,
            "can_multi_conn": True, "can_df": True, "is_read_only": False}
    if SERVER == "qemu-nbd":
        del want["can_multi_conn"]   # qemu-nbd 7.2: only for read-only
    for name, v in want.items():
        check_eq(bool(getattr(h, name)()), v, name)
    h.shutdown()

    h = srv.connect(structured=False)
    check(not h.can_df(), "no DF without structured replies", False, True)
    h.shutdown()

    with Raw(srv.sock) as r:
        size, eflags, _, _ = r.handshake()
        check(eflags & EF_HAS_FLAGS, "HAS_FLAGS", 1, eflags)
        check(not eflags & EF_SEND_FAST_ZERO or
              eflags & EF_SEND_WRITE_ZEROES,
              "FAST_ZERO only with WRITE_ZEROES", "both", hex(eflags))
        check(not eflags & ~0xdff, "no unknown flag bits (incl. RESIZE)",
              "bits 0-8,10,11 only", hex(eflags))
        r.disc()
finish()
