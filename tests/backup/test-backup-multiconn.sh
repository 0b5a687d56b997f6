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

# Several connections when the server offers multi-conn (nbdkit's file
# plugin does): small requests from 4 connections written concurrently
# into one qcow2 file give an exact copy; holes stay unallocated.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"
requires nbdkit --filter=log file --version

raw=$tmpdir/disk.raw
truncate -s 64M "$raw"
$PYTHON - "$raw" <<'EOT'
import os, random, sys
r = random.Random(7)
with open(sys.argv[1], "r+b") as f:
    for i in range(40):
        f.seek(r.randrange(0, 63 << 20))
        f.write(os.urandom(r.randrange(1, 1 << 20)))
EOT
nbdkit -f -U "$tmpdir/sock" -P "$tmpdir/pid" --filter=log \
  file "$raw" logfile="$tmpdir/log" &
npid=$!
cleanup_fn "kill $npid 2>/dev/null; wait $npid 2>/dev/null"
wait_for_file "$tmpdir/pid" 30
uri="nbd+unix:///?socket=$tmpdir/sock"

$BACKUP full "$uri" -o "$tmpdir/b" -C 4 -R 8 -S 64K
kill $npid; wait $npid || :
qemu-img compare -q -f qcow2 -F raw "$tmpdir/b/backup-0000.qcow2" "$raw"
qemu-img check -q "$tmpdir/b/backup-0000.qcow2"
$BACKUP verify "$tmpdir/b" -q
conns=$(grep -c 'connection=[0-9]* Connect' "$tmpdir/log" || :)
echo "connections: $conns"
test "$conns" -eq 4
# Holes were not copied.
test "$(layer_data_bytes "$tmpdir/b/backup-0000.qcow2")" -lt $(( 48 << 20 ))
