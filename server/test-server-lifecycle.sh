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

# -U with a pid file, -s (nbd_connect_command), socket activation, the
# FILE shorthand, and SIGTERM: the socket and pid file go away, exit 0.
source "$top_srcdir/tests/functions.sh" || exit 99
NBDSH="$PYTHON -m nbd"
requires $NBDSH --version
requires nbdinfo --version

sock=$tmpdir/sock pid=$tmpdir/pid
start_server "$pid" "$sock" memory 1M
[ -S "$sock" ]
$NBDSH -u "nbd+unix:///?socket=$sock" -c '
h.pwrite(b"hello", 4096)
assert h.pread(5, 4096) == b"hello"
assert h.get_size() == 1048576
'
kill "$(cat "$pid")"
for (( i = 0; i < 100; i++ )); do
  [ -e "$sock" ] || [ -e "$pid" ] || break
  sleep 0.1
done
if [ -e "$sock" ] || [ -e "$pid" ]; then
  echo "socket or pid file left behind after SIGTERM"; exit 1
fi

# -s: one client on stdin/stdout.
$NBDSH -c '
h.connect_command(["'"$NBDCBT"'", "-s", "memory", "size=2M"])
assert h.get_size() == 2 * 1024 * 1024
h.pwrite(b"x" * 512, 0)
assert h.pread(512, 0) == b"x" * 512
'

# Socket activation.
nbdinfo --size -- [ "$NBDCBT" memory size=1M ] | grep -qx 1048576

# nbdcbt FILE picks the file plugin for a raw image.
if [ -e "$top_builddir/plugins/file/.libs/nbdcbt-file-plugin.so" ]; then
  truncate -s 3M "$tmpdir/disk.raw"
  nbdinfo --size -- [ "$NBDCBT" "$tmpdir/disk.raw" ] | grep -qx 3145728
fi

# -e: the named export and "" both work, others do not.
nbdinfo --size -- [ "$NBDCBT" -e foo memory size=1M ] | grep -qx 1048576
if $NBDSH -c '
h.set_export_name("bar")
h.connect_systemd_socket_activation(["'"$NBDCBT"'", "-e", "foo", "memory", "size=1M"])
' 2>/dev/null; then
  echo "unknown export name was accepted"; exit 1
fi
exit 0
