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

# Tracking in nbdkit, then a backup with nbdcbt is incremental: a chain
# starts with a full backup through nbdcbt (a session on the control
# socket, which syncs bitmap b0 in the raw image's sidecar); nbdkit with
# the cbt filter then serves the image to a writer; nbdcbt-img map reads
# the map nbdkit left; nbdcbt serves the image again and
# 'nbdcbt-backup inc --control' copies exactly the changed extents; the
# chain restores the image exactly, and b0 is clean afterwards.
source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdkit --version
requires nbdsh --version
requires qemu-img --version

filter="$top_builddir/tools/nbdkit-filter/.libs/nbdkit-cbt-filter.so"
if ldd "$filter" | grep -Eq 'lib(asan|ubsan)\.so'; then
  echo "$0: skipped: the filter is built with sanitizers; Debian's nbdkit is not"
  exit 77
fi
img="$tmpdir/disk.raw"
chain="$tmpdir/chain"
head -c 16M /dev/urandom > "$img"
nbdcbt-img bitmap --add "$img" b0
uri="nbd+unix:///disk0?socket=$tmpdir/s"

serve_nbdcbt ()
{
  rm -f "$tmpdir/s" "$tmpdir/ctl"
  "$NBDCBT" -f -U "$tmpdir/s" --control="$tmpdir/ctl" -e disk0 \
    --node-name=disk0 --filter=fleece --filter=dirty \
    file "$img" session-dir="$tmpdir" &
  srvpid=$!
  cleanup_fn "kill $srvpid 2>/dev/null"
  wait_for_file "$tmpdir/ctl"
  wait_for_file "$tmpdir/s"
}
stop_nbdcbt ()
{
  kill "$srvpid"
  wait "$srvpid"
}
map () # the dirty extents of b0 as "OFFSET LENGTH" lines
{
  nbdcbt-img map --bitmap=b0 "$img" | awk '$4 == "dirty" {print $1, $2}'
}

# The full backup, through a session: b0 is clean after it.
serve_nbdcbt
nbdcbt-backup full "$uri" -o "$chain" --bitmap b0 -q \
  --control "$tmpdir/ctl" --node disk0
stop_nbdcbt
test -z "$(map)"

# nbdkit with the cbt filter: a write, an unaligned write, a zero, a trim.
nbdkit -f -U "$tmpdir/k" -P "$tmpdir/k.pid" --filter="$filter" \
  file "$img" &
nkpid=$!
cleanup_fn "kill $nkpid 2>/dev/null"
wait_for_file "$tmpdir/k.pid"
nbdsh -u "nbd+unix:///?socket=$tmpdir/k" -c '
h.pwrite(b"\x55" * 4096, 1 << 20)
h.pwrite(b"\x66" * 70000, 5 * (1 << 20) + 100)
h.zero(65536, 9 * (1 << 20))
h.trim(65536, 12 * (1 << 20))
h.flush()
'
kill "$nkpid"
wait "$nkpid"

# The map nbdkit left, read offline.
map > "$tmpdir/map"
cat "$tmpdir/map"
diff -u - "$tmpdir/map" <<MAP
1048576 65536
5242880 131072
9437184 65536
12582912 65536
MAP

# nbdcbt again: the incremental copies exactly those extents.
serve_nbdcbt
nbdcbt-backup inc "$uri" -o "$chain" --bitmap b0 -q \
  --control "$tmpdir/ctl" --node disk0
stop_nbdcbt
nbdcbt-backup list "$chain" | tee "$tmpdir/list"
# Its layer holds exactly the four extents (the zero and the trim as zero
# clusters), nothing else; the data written counts as data.
qemu-img map --output=json -f qcow2 "$chain/backup-0001.qcow2" |
  "$PYTHON" -c '
import json, sys
own = [(e["start"], e["length"]) for e in json.load(sys.stdin)
       if e["depth"] == 0]
print(own)
assert own == [(1048576, 65536), (5242880, 131072), (9437184, 65536),
               (12582912, 65536)], own
'
data=$(awk '$2 == "incremental" { print $5 }' "$tmpdir/list")
test "$data" = $((65536 + 131072))
test -z "$(map)"

nbdcbt-backup restore "$chain" -o "$tmpdir/restored.raw" -q
cmp "$tmpdir/restored.raw" "$img"
