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

# A full backup and five incrementals of a qcow2 image served by qemu-nbd
# -B b0, with random writes, zero writes and discards in between (made by
# qemu-io, recorded in the persistent bitmap; cleared with qemu-img after
# each backup).  Every point restores to the image as it was, the chain
# files read correctly in qemu-img, and each incremental stores no more
# than the dirty data plus one granule per extent.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"

img=$tmpdir/disk.qcow2
dir=$tmpdir/backups
qemu-img create -q -f qcow2 "$img" 64M
qemu-io -f qcow2 -c 'write -P 0x55 0 6M' -c 'write -P 0x66 30M 2M' \
  -c 'write -P 0x77 63M 1M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0

serve_qemu "$img" -B b0
$BACKUP full "$uri" -o "$dir" --bitmap b0
stop_qemu
qemu-img convert -f qcow2 -O raw "$img" "$tmpdir/point-0.raw"
qemu-img bitmap --clear "$img" b0

for n in 1 2 3 4 5; do
  random_writes "$img" $n
  serve_qemu "$img" -B b0
  # What the bitmap reports, to bound what the incremental stores.
  $BACKUP extents "$uri" --bitmap b0 > "$tmpdir/extents-$n"
  # One layer with SHA-256 sums (as where gnutls has no UMAC and the
  # CPU no CRC-32C): a chain may mix them.
  if [ $n -eq 3 ]; then
    NBDCBT_BACKUP_SUM=sha256 $BACKUP inc "$uri" -o "$dir" --bitmap b0
    head -1 "$dir/backup-0003.sums" | grep -qx 'nbdcbt-backup-sums 2 sha256'
  else
    $BACKUP inc "$uri" -o "$dir" --bitmap b0
  fi
  stop_qemu
  qemu-img convert -f qcow2 -O raw "$img" "$tmpdir/point-$n.raw"
  qemu-img bitmap --clear "$img" b0

  check_stored_bound $n "$dir/backup-000$n.qcow2" "$tmpdir/extents-$n"
done

# A hollow incremental (nothing changed) through --auto.
serve_qemu "$img" -B b0
$BACKUP inc --auto "$uri" -o "$dir" --bitmap b0
stop_qemu
test "$(layer_data_bytes "$dir/backup-0006.qcow2")" -eq 0
cp "$tmpdir/point-5.raw" "$tmpdir/point-6.raw"

$BACKUP list "$dir"
$BACKUP verify "$dir"

# qemu-img sees a standard chain with relative backing files.
qemu-img info --backing-chain "$dir/backup-0006.qcow2" > "$tmpdir/info"
test "$(grep -c '^image: ' "$tmpdir/info")" -eq 7
grep -q '^backing file: backup-0005.qcow2 ' "$tmpdir/info"
grep -q '^backing file format: qcow2$' "$tmpdir/info"
qemu-img check "$dir/backup-0006.qcow2" >/dev/null

for n in 0 1 2 3 4 5 6; do
  qemu-img compare -q -f qcow2 -F raw "$dir/backup-000$n.qcow2" \
    "$tmpdir/point-$n.raw"
  $BACKUP restore "$dir" --until $n -o "$tmpdir/restored.raw" -q
  qemu-img compare -q -f raw -F raw "$tmpdir/restored.raw" \
    "$tmpdir/point-$n.raw"
done

# Restore into qcow2, and into an NBD export.
$BACKUP restore "$dir" --until 3 -o "$tmpdir/restored.qcow2" -O qcow2 -q
qemu-img check "$tmpdir/restored.qcow2" >/dev/null
qemu-img compare -q -f qcow2 -F raw "$tmpdir/restored.qcow2" \
  "$tmpdir/point-3.raw"

qemu-img create -q -f qcow2 "$tmpdir/target.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0xee 0 64M' "$tmpdir/target.qcow2" >/dev/null
serve_qemu "$tmpdir/target.qcow2"
$BACKUP restore "$dir" -o "$uri" -q
stop_qemu
qemu-img compare -q -f qcow2 -F raw "$tmpdir/target.qcow2" \
  "$tmpdir/point-6.raw"

# No leftovers.
test -z "$(ls -A "$dir" | grep -v -e '^backup-000[0-6]\.qcow2$' \
           -e '^backup-000[0-6]\.sums$' -e '^manifest.json$' -e '^.lock$')"
