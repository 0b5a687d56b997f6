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

# Written data is flushed before the chain closes: when the client
# disconnects, and when SIGTERM stops the server under a connected client.
# The log filter sits above the plugin and records the flush the server
# sends down.
. "$top_srcdir/tests/functions.sh" || exit 99
requires test -x "$top_builddir/filters/log/.libs/nbdcbt-log-filter.so"

disk=$tmpdir/disk.raw log=$tmpdir/log sock=$tmpdir/sock pid=$tmpdir/pid
truncate -s 1M "$disk"

# 1. A client writes and disconnects (without flushing itself).
start_server "$pid" "$sock" --filter=log file "$disk" logfile="$log"
$PYTHON -c '
import nbd, sys
h = nbd.NBD(); h.connect_unix(sys.argv[1])
h.pwrite(b"x" * 4096, 0)
h.shutdown()' "$sock"
for _ in $(seq 50); do grep -q 'Disconnect' "$log" && break; sleep 0.1; done
grep -A1 'Write id=' "$log" | grep -q 'Flush' || {
  echo "$0: no flush after the write at disconnect:"; cat "$log"; exit 1; }
stop_server "$pid"

# 2. SIGTERM while a client that wrote is still connected.
: > "$log"; rm -f "$pid"
start_server "$pid" "$sock" --filter=log file "$disk" logfile="$log"
$PYTHON -c '
import nbd, sys, time
h = nbd.NBD(); h.connect_unix(sys.argv[1])
h.pwrite(b"y" * 4096, 8192)
open(sys.argv[2], "w").close()
time.sleep(30)' "$sock" "$tmpdir/wrote" &
client=$!
cleanup_fn "kill $client 2>/dev/null"
wait_for_file "$tmpdir/wrote"
stop_server "$pid"
grep -A1 'Write id=' "$log" | grep -q 'Flush' || {
  echo "$0: no flush after the write on SIGTERM:"; cat "$log"; exit 1; }

# 3. A read-only export has nothing to flush.
: > "$log"; rm -f "$pid"
start_server "$pid" "$sock" -r --filter=log file "$disk" logfile="$log"
$PYTHON -c '
import nbd, sys
h = nbd.NBD(); h.connect_unix(sys.argv[1])
h.pread(4096, 0); h.shutdown()' "$sock"
stop_server "$pid"
if grep -q 'Flush' "$log"; then
  echo "$0: flush on a read-only export:"; cat "$log"; exit 1
fi
