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

# nbdcbt-backup against nbdcbt's own change tracking: the dirty filter on
# an in-memory disk exporting qemu:dirty-bitmap:b0.  A full backup and
# five incrementals with random writes, zeroes and trims in between (made
# over NBD while the server runs); every point restores exactly.  The
# bitmap is never cleared here, so each incremental holds everything
# since the full one: larger than needed, never wrong.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"
requires nbdcopy --version
requires_built server/nbdcbt plugins/memory/.libs/nbdcbt-memory-plugin.so \
  filters/dirty/.libs/nbdcbt-dirty-filter.so

dir=$tmpdir/backups
start_server "$tmpdir/pid" "$tmpdir/sock" \
  --filter=dirty memory size=64M bitmap=b0
uri="nbd+unix:///?socket=$tmpdir/sock"

# Some data before the full backup.
$PYTHON - "$tmpdir/sock" <<'EOT'
import nbd, sys
h = nbd.NBD()
h.connect_unix(sys.argv[1])
h.pwrite(b"\x55" * (4 << 20), 0)
h.pwrite(b"\x66" * (1 << 20), 40 << 20)
h.shutdown()
EOT
$BACKUP full "$uri" -o "$dir" --bitmap b0 -q
nbdcopy "$uri" "$tmpdir/point-0.raw"

for n in 1 2 3 4 5; do
  nbd_random_writes "$tmpdir/sock" $n
  $BACKUP inc "$uri" -o "$dir" --bitmap b0 -q
  nbdcopy "$uri" "$tmpdir/point-$n.raw"
done

$BACKUP list "$dir"
$BACKUP verify "$dir" -q
for n in 0 1 2 3 4 5; do
  qemu-img compare -q -f qcow2 -F raw "$dir/backup-000$n.qcow2" \
    "$tmpdir/point-$n.raw"
  $BACKUP restore "$dir" --until $n -o "$tmpdir/restored.raw" -q
  cmp "$tmpdir/restored.raw" "$tmpdir/point-$n.raw"
done

# A bitmap the server does not track.
if $BACKUP full "$uri" -o "$tmpdir/other" --bitmap nope 2> "$tmpdir/err"; then
  echo "$0: a missing bitmap was not detected" >&2; exit 1
fi
cat "$tmpdir/err"
grep -q "does not offer 'qemu:dirty-bitmap:nope'" "$tmpdir/err"
test ! -e "$tmpdir/other/manifest.json"
