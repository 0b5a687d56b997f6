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
