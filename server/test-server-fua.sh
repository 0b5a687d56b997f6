#!/usr/bin/env bash
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

# FUA is emulated at the bottom of the chain: a plugin without native FUA
# gets its flush right after the write, trim or zero (as nbdkit's
# plugin_pwrite), and the filters above see the FUA request pass by, not
# an extra flush.  (With store-on-flush, a flush travelling through the
# dirty filter stored every bitmap on each FUA write.)
source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdsh --version

plugin=$top_builddir/server/.libs/nbdcbt-nofua-plugin.so
[ -e "$plugin" ] || { echo "$0: skipped: $plugin was not built"; exit 77; }
sock=$tmpdir/sock pid=$tmpdir/pid trace=$tmpdir/trace log=$tmpdir/log

start_server "$pid" "$sock" --filter=log "$plugin" trace="$trace" \
  logfile="$log"
nbdsh -u "nbd+unix:///?socket=$sock" -c '
assert h.can_fua()
h.pwrite(b"x" * 4096, 0, nbd.CMD_FLAG_FUA)
h.trim(4096, 8192, nbd.CMD_FLAG_FUA)
h.zero(4096, 16384, nbd.CMD_FLAG_FUA)
h.pwrite(b"y" * 4096, 65536)
h.flush()
'
stop_server "$pid"

# The plugin: each FUA request without the flag, then its flush; the
# plain write, then the client's flush.
cat >"$tmpdir/expected" <<'X'
pwrite fua=0
flush fua=0
trim fua=0
flush fua=0
zero fua=0
flush fua=0
pwrite fua=0
flush fua=0
X
diff -u "$tmpdir/expected" "$trace"

# The filter above: the FUA flag on the requests, and one flush, the
# client's.
grep -q "Write id=1 offset=0x0 count=0x1000 fua=1 return=0" "$log"
grep -q "Trim id=2 offset=0x2000 count=0x1000 fua=1 return=0" "$log"
grep -q "Zero id=3 offset=0x4000 count=0x1000 trim=1 fua=1 fast=0 return=0" "$log"
[ "$(grep -c ' Flush ' "$log")" = 1 ] || { cat "$log"; exit 1; }
exit 0
