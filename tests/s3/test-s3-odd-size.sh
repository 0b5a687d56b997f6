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

# A disk whose size is not a multiple of 512 (10000001 bytes) backed up
# into S3: the streamed layers are padded to 10000384 bytes like the
# files of a directory chain (tests/backup/test-backup-odd-size.sh), a
# full backup and an incremental that changes the last, partial sector
# succeed, and each point restores to exactly the disk.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$top_srcdir/tests/backup/backup-functions.sh"
source "$srcdir/s3-functions.sh"
requires nbdcopy --version
requires_built server/nbdcbt plugins/memory/.libs/nbdcbt-memory-plugin.so \
  filters/dirty/.libs/nbdcbt-dirty-filter.so
start_s3

size=10000001
url=s3://$bucket/odd
start_server "$tmpdir/pid" "$tmpdir/sock" \
  --filter=dirty memory size=$size bitmap=b0
uri="nbd+unix:///?socket=$tmpdir/sock"
for n in 0 1; do
  write_odd_round "$tmpdir/sock" $n
  if [ $n -eq 0 ]; then
    $BACKUP full "$uri" -o "$url" --bitmap b0 -q "${S3[@]}"
  else
    $BACKUP inc "$uri" -o "$url" --bitmap b0 -q "${S3[@]}"
  fi
  nbdcopy "$uri" "$tmpdir/point-$n.raw"
done
$BACKUP list "$url" "${S3[@]}" | grep -q "^virtual size: $size\$"
$BACKUP verify "$url" "${S3[@]}" -q
for n in 0 1; do
  rm -f "$tmpdir/restored.raw"
  $BACKUP restore "$url" --until $n -o "$tmpdir/restored.raw" -q "${S3[@]}"
  cmp "$tmpdir/restored.raw" "$tmpdir/point-$n.raw"
done
# Each object, downloaded (under its name, for the next one's backing
# file), is a qcow2 file qemu-img finds clean, of the padded size.
for key in $(s3_keys odd/ | grep '\.qcow2$'); do
  f=$tmpdir/$(basename "$key")
  s3_get "$key" "$f"
  qemu-img check -q "$f"
  qemu-img info --output=json "$f" | grep -q '"virtual-size": 10000384'
done
# The last point, read by QEMU: the disk, then zeroes to the padded end.
qemu-img convert -f qcow2 -O raw "$f" "$tmpdir/qemu.raw"
head -c $size "$tmpdir/qemu.raw" | cmp - "$tmpdir/point-1.raw"
[ "$(tail -c 383 "$tmpdir/qemu.raw" | tr -d '\0' | wc -c)" -eq 0 ]
