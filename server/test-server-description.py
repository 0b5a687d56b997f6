#!/usr/bin/env python3
"""-D TEXT: NBD_INFO_DESCRIPTION when the client asks for it (opt_info and
opt_go), and the description part of NBD_OPT_LIST's NBD_REP_SERVER; none
without -D."""
import os
import sys

import nbd

NBDCBT = os.environ["NBDCBT"]


def connect(args):
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.set_full_info(True)
    h.connect_systemd_socket_activation([NBDCBT] + args)
    return h


def listed(h):
    exports = []
    h.opt_list(lambda name, desc: exports.append((name, desc)))
    return exports


desc = "test disk \u00e9 with spaces"
h = connect(["-e", "vm1", "-D", desc, "memory", "size=1M"])
assert listed(h) == [("vm1", desc)], listed(h)
h.set_export_name("vm1")
h.opt_info()
assert h.get_export_description() == desc, h.get_export_description()
assert h.get_size() == 1048576
h.opt_go()
assert h.get_export_description() == desc
h.shutdown()

h = connect(["memory", "size=1M"])
assert listed(h) == [("", "")], listed(h)
h.opt_info()
try:
    d = h.get_export_description()
    sys.exit("description %r without -D" % d)
except nbd.Error:
    pass
h.opt_abort()
