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

# Handshake through libnbd's option mode: LIST, INFO, GO, ABORT, export
# names (default and -e NAME), unknown export names.
import nbd
from nbdproto import *


def listed(srv):
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_unix(srv.sock)
    names = []
    h.opt_list(lambda name, desc: names.append(name) or 0)
    h.opt_abort()
    del h
    return names


SIZE = 1024 * 1024
with memory("1M") as srv:
    names = listed(srv)
    check(len(names) >= 1, "OPT_LIST lists at least one export", ">= 1", names)

    # INFO, then GO on the same handle.
    h = srv.connect(opt_mode=True)
    check(h.aio_is_negotiating(), "opt mode stays negotiating", True, False)
    h.set_export_name("")
    h.opt_info()
    check_eq(h.get_size(), SIZE, "INFO: size of the default export")
    check(not h.is_read_only(), "INFO: writable export", False, True)
    check(h.can_flush() and h.can_trim() and h.can_zero(),
          "INFO: flush/trim/zero flags known before GO", True, False)
    h.opt_go()
    check(h.aio_is_ready(), "GO: in transmission", True,
          h.connection_state())
    check_eq(h.get_size(), SIZE, "GO: size")
    h.pwrite(b"x" * 512, 0)
    check_eq(h.pread(512, 0), b"x" * 512, "read back after GO")
    h.shutdown()

    # ABORT ends the session cleanly.
    h = srv.connect(opt_mode=True)
    h.opt_abort()
    try:
        h.pread(512, 0)
        check(False, "commands after opt_abort fail", "error", "ok")
    except nbd.Error:
        pass
    del h
    still_serving(srv, "after OPT_ABORT")

    # Several INFOs before GO keep the connection in option haggling.
    h = srv.connect(opt_mode=True)
    for _ in range(3):
        h.opt_info()
    h.opt_go()
    check_eq(h.get_size(), SIZE, "size after 3 INFOs and GO")
    h.shutdown()

# A named export: listed under its name, INFO and GO on it work.
with memory("2M", export="disk1") as srv:
    names = listed(srv)
    # (nbdkit 1.32 lists its default export as "" whatever -e says.)
    check("disk1" in names or SERVER == "nbdkit", "OPT_LIST lists the -e export name",
          "'disk1' in list", names)
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.set_export_name("disk1")
    h.connect_unix(srv.sock)
    h.opt_info()
    check_eq(h.get_size(), 2 * SIZE, "INFO on 'disk1'")
    h.opt_go()
    check_eq(h.pread(4096, 0), bytes(4096), "read from 'disk1'")
    h.shutdown()

    # An unknown export: INFO and GO fail, the option phase goes on.
    # (nbdkit serves any export name, so this part is for the others.)
    if SERVER != "nbdkit":
        h = nbd.NBD()
        h.set_opt_mode(True)
        h.connect_unix(srv.sock)
        h.set_export_name("no-such-export")
        for what, fn in (("INFO", h.opt_info), ("GO", h.opt_go)):
            try:
                fn()
                check(False, what + " of an unknown export fails",
                      "error", "success")
            except nbd.Error:
                pass
            check(h.aio_is_negotiating(),
                  "still negotiating after failed " + what, True,
                  h.connection_state())
        h.set_export_name("disk1")
        h.opt_go()
        check_eq(h.get_size(), 2 * SIZE, "GO 'disk1' after the failures")
        h.shutdown()
    # The same by hand: INFO/GO of an unknown name -> NBD_REP_ERR_UNKNOWN,
    # EXPORT_NAME of an unknown name -> the server hangs up.
    if SERVER != "nbdkit":
        with Raw(srv.sock) as r:
            r.start()
            for opt in (OPT_INFO, OPT_GO):
                got = r.option(opt, Raw.info_data(b"nosuch"))[-1][0]
                check_eq(hex(got), hex(ERR_UNKNOWN),
                         "raw %s of an unknown export" % opt)
            reps = r.option(OPT_GO, Raw.info_data(b"disk1"))
            check_eq(reps[-1][0], REP_ACK, "raw GO 'disk1' after that")
            r.disc()
        with Raw(srv.sock) as r:
            r.start()
            r.send_option(OPT_EXPORT_NAME, b"nosuch")
            check(r.closed_by_server(), "EXPORT_NAME of an unknown export "
                  "-> disconnect", "EOF", "still open")
    still_serving(srv)

finish()
