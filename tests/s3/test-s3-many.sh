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


# Many disks in one run into S3: -o s3://BUCKET/PREFIX holds one chain
# per disk, PREFIX/NAME.  Two qemu-nbd servers; the second run finds one
# of them killed: it fails alone (exit 1, the summary says so), the other
# disk's chain gets its incremental, and both chains verify and restore.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$top_srcdir/tests/backup/backup-functions.sh"
source "$srcdir/s3-functions.sh"
start_s3

# serve NAME: qemu-nbd on $tmpdir/NAME.qcow2 (bitmap b0), socket
# $tmpdir/NAME.sock; its pid in $pid_NAME.
serve ()
{
  rm -f "$tmpdir/$1.pid"
  qemu-nbd -t -f qcow2 -B b0 -k "$tmpdir/$1.sock" --pid-file="$tmpdir/$1.pid" \
    "$tmpdir/$1.qcow2" &
  eval "pid_$1=$!"
  cleanup_fn "kill $! 2>/dev/null; wait $! 2>/dev/null"
  wait_for_file "$tmpdir/$1.pid" 30
}

for d in db web; do
  qemu-img create -q -f qcow2 "$tmpdir/$d.qcow2" 16M
  qemu-io -f qcow2 -c "write -P 0x5$((${#d})) 0 3M" "$tmpdir/$d.qcow2" >/dev/null
  qemu-img bitmap --add "$tmpdir/$d.qcow2" b0
  serve $d
done
url=s3://$bucket/hosts
disks=(db="nbd+unix:///?socket=$tmpdir/db.sock"
       web="nbd+unix:///?socket=$tmpdir/web.sock")

$BACKUP auto -o "$url" --bitmap b0 "${disks[@]}" "${S3[@]}" | tee "$tmpdir/out"
grep -q '^all 2 disks backed up' "$tmpdir/out"
for d in db web; do
  nbdcopy "nbd+unix:///?socket=$tmpdir/$d.sock" "$tmpdir/$d-0.raw"
  qemu-io -f raw -c "write -P 0x77 5M 1M" "nbd+unix:///?socket=$tmpdir/$d.sock" \
    >/dev/null
  nbdcopy "nbd+unix:///?socket=$tmpdir/$d.sock" "$tmpdir/$d-1.raw"
done
kill $pid_web

rc=0
$BACKUP auto -o "$url" --bitmap b0 "${disks[@]}" "${S3[@]}" \
  > "$tmpdir/out" 2> "$tmpdir/err" || rc=$?
cat "$tmpdir/out" "$tmpdir/err"
test $rc -eq 1
grep -q '^db  *ok  *incremental  *1 ' "$tmpdir/out"
grep -q '^web  *FAILED ' "$tmpdir/out"
grep -q '^1 of 2 disks FAILED' "$tmpdir/out"
grep -q '^nbdcbt-backup: web: ' "$tmpdir/err"

$BACKUP verify -q "$url/db" "${S3[@]}"
$BACKUP verify -q "$url/web" "${S3[@]}"
for n in 0 1; do
  $BACKUP restore "$url/db" --until $n -o "$tmpdir/r.raw" -q "${S3[@]}"
  cmp "$tmpdir/r.raw" "$tmpdir/db-$n.raw"
done
$BACKUP restore "$url/web" -o "$tmpdir/r.raw" -q "${S3[@]}"
cmp "$tmpdir/r.raw" "$tmpdir/web-0.raw"
s3_keys hosts/ | grep -q '^hosts/db/manifest.json$'
s3_keys hosts/ | grep -q '^hosts/web/manifest.json$'
