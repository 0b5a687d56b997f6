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

# Systemd socket activation (LISTEN_FDS/LISTEN_PID) through
# nbdinfo -- [ SERVER ... ], and -s (serve one client on stdin/stdout)
# through nbd_connect_command.
. "$top_srcdir/tests/functions.sh" || exit 99
. "$srcdir/protocol-functions.sh"
only nbdcbt nbdkit
requires nbdinfo --version

case "$SERVER" in
  nbdcbt) server=("$NBDCBT" memory size=1M) ;;
  nbdkit) server=(nbdkit memory 1M) ;;
esac

nbdinfo --size -- [ "${server[@]}" ] > "$tmpdir/size"
if [ "$(cat "$tmpdir/size")" != 1048576 ]; then
  echo "$0: socket activation: size $(cat "$tmpdir/size"), expected 1048576" >&2
  exit 1
fi
nbdinfo --map -- [ "${server[@]}" ] > "$tmpdir/map"
grep -q "hole\|data" "$tmpdir/map"

$PYTHON - "${server[0]}" "${server[@]:1}" <<'PY'
import sys
import nbd
argv = [sys.argv[1], "-s"] + sys.argv[2:]
h = nbd.NBD()
h.connect_command(argv)
assert h.get_size() == 1 << 20, h.get_size()
h.pwrite(b"stdio", 1000)
got = h.pread(5, 1000)
assert got == b"stdio", got
h.flush()
h.shutdown()
# A second -s server: fresh memory, so the data is gone.
h = nbd.NBD()
h.connect_command(argv)
got = h.pread(5, 1000)
assert got == bytes(5), got
h.shutdown()
PY
