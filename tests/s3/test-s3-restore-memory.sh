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

# Memory of a restore from S3: the layers of a chain share one segment
# cache (qcow2-remote.c), so restoring a chain of 14 incrementals of
# 12 MiB each, read through every layer, takes no more than 64 MiB (the
# cache) above restoring a chain of one such layer.  Each layer with a
# cache of its own took 12 MiB per layer, 168 MiB in all.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$top_srcdir/tests/backup/backup-functions.sh"
source "$srcdir/s3-functions.sh"
requires /usr/bin/time --version
start_s3

# chain URL LAYERS: a 168 MiB disk, layer N of the chain at URL holding
# only [12N, 12N+12) MiB (pattern N+1); the disk in $tmpdir/LAYERS.raw.
chain ()
{
  local url=$1 layers=$2 n img=$tmpdir/disk-$2.qcow2
  qemu-img create -q -f qcow2 "$img" 168M
  qemu-img bitmap --add "$img" b0
  for (( n = 0; n < layers; n++ )); do
    qemu-io -f qcow2 -c "write -P $(( n + 1 )) $(( n * 12 ))M 12M" \
      "$img" >/dev/null
    serve_qemu "$img" -B b0
    $BACKUP auto "$uri" -o "$url" --bitmap b0 -q "${S3[@]}"
    stop_qemu
    qemu-img bitmap --clear "$img" b0
  done
  qemu-img convert -f qcow2 -O raw "$img" "$tmpdir/$layers.raw"
  rm -f "$img"
}

# rss URL LAYERS: restore URL, check it, print the peak RSS (KiB).
rss ()
{
  rm -f "$tmpdir/r.raw"
  # In a sanitizer build freed memory waits in ASan's quarantine (256 MiB)
  # and counts in the RSS: measure without it.
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0" \
  /usr/bin/time -f %M -o "$tmpdir/rss" \
    $BACKUP restore "$1" -o "$tmpdir/r.raw" -q "${S3[@]}"
  cmp "$tmpdir/r.raw" "$tmpdir/$2.raw"
  rm -f "$tmpdir/r.raw"
  tail -n1 "$tmpdir/rss"
}

chain "s3://$bucket/one" 1
chain "s3://$bucket/many" 14
echo "[$SECONDS s] chains written"
[ "$($BACKUP list "s3://$bucket/many" "${S3[@]}" | grep -c incremental)" -eq 13 ]
one=$(rss "s3://$bucket/one" 1)
many=$(rss "s3://$bucket/many" 14)
echo "peak RSS of a restore: 1 layer ${one} KiB, 14 layers ${many} KiB"
[ $(( many - one )) -lt $(( 80 * 1024 )) ]
