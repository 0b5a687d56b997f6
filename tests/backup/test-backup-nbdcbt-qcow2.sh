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

# nbdcbt serving a qcow2 image (nbdcbt IMG.qcow2) whose persistent
# bitmap b0 was added by nbdcbt-img: a full backup, then five rounds of
# stop the server (SIGTERM), clear the bitmap offline with nbdcbt-img,
# restart, write over NBD (data, zeroes, trims), incremental.  Each
# incremental stores no more than the dirty data plus one granule per
# extent, and every point restores exactly.  The server's description
# (-D) is recorded in the manifest and checked.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"
requires nbdcopy --version
requires_built server/nbdcbt tools/img/nbdcbt-img \
  plugins/qcow2/.libs/nbdcbt-qcow2-plugin.so \
  filters/dirty/.libs/nbdcbt-dirty-filter.so
IMG_TOOL=$top_builddir/tools/img/nbdcbt-img

img=$tmpdir/disk.qcow2
dir=$tmpdir/backups
qemu-img create -q -f qcow2 "$img" 64M
qemu-io -f qcow2 -c 'write -P 0x55 0 6M' -c 'write -P 0x66 30M 2M' \
  "$img" >/dev/null
"$IMG_TOOL" bitmap --add "$img" b0
uri="nbd+unix:///?socket=$tmpdir/sock"

serve ()
{
  rm -f "$tmpdir/pid"
  start_server "$tmpdir/pid" "$tmpdir/sock" -D "test disk" "$img"
}

serve
$BACKUP full "$uri" -o "$dir" --bitmap b0 --disk-id disk1 -q
nbdcopy "$uri" "$tmpdir/point-0.raw"
$BACKUP list "$dir" | grep -q '^description: *"test disk"$'

for n in 1 2 3 4 5; do
  stop_server "$tmpdir/pid"
  "$IMG_TOOL" bitmap --clear "$img" b0
  serve
  nbd_random_writes "$tmpdir/sock" $(( n * 7919 ))
  # What the bitmap reports, to bound what the incremental stores.
  $BACKUP extents "$uri" --bitmap b0 > "$tmpdir/extents-$n"
  nbdcopy "$uri" "$tmpdir/point-$n.raw"
  $BACKUP inc "$uri" -o "$dir" --bitmap b0 --disk-id disk1 -q

  check_stored_bound $n "$dir/backup-000$n.qcow2" "$tmpdir/extents-$n"
  # The bitmap was cleared at the last backup: it must be far from
  # holding the whole allocated disk.
  if [ "$limit" -ge $(( 8 << 20 )) ]; then
    echo "$0: the bitmap reports $limit dirty bytes after a clear" >&2
    exit 1
  fi
done
stop_server "$tmpdir/pid"

# Another description: refused.
rm -f "$tmpdir/pid"
start_server "$tmpdir/pid" "$tmpdir/sock" -D "other disk" "$img"
if $BACKUP inc "$uri" -o "$dir" --bitmap b0 --disk-id disk1 \
     2> "$tmpdir/err"; then
  echo "$0: a changed export description was not detected" >&2; exit 1
fi
cat "$tmpdir/err"
grep -qF 'had the description "test disk", this one has "other disk"' \
  "$tmpdir/err"
stop_server "$tmpdir/pid"

$BACKUP verify "$dir" -q
for n in 0 1 2 3 4 5; do
  qemu-img compare -q -f qcow2 -F raw "$dir/backup-000$n.qcow2" \
    "$tmpdir/point-$n.raw"
  $BACKUP restore "$dir" --until $n -o "$tmpdir/restored.raw" -q
  cmp "$tmpdir/restored.raw" "$tmpdir/point-$n.raw"
done
