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

# An incremental is not added to a chain that cannot be verified: a
# backup whose checksum list is missing (the last one's or an earlier
# one's) or damaged (the last one's), or an earlier backup's file
# truncated or grown, would make verify fail and restore refuse every
# later point, the new backup included.  inc refuses, naming the file,
# and changes nothing; --auto says why and starts a new chain, keeping
# the old one aside.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"

img=$tmpdir/disk.qcow2
dir=$tmpdir/backups
qemu-img create -q -f qcow2 "$img" 32M
qemu-io -f qcow2 -c 'write -P 0x55 0 8M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0
serve_qemu "$img" -B b0
$BACKUP full "$uri" -o "$dir" --bitmap b0 -q
stop_qemu
qemu-io -f qcow2 -c 'write -P 0x66 1M 1M' "$img" >/dev/null
serve_qemu "$img" -B b0
$BACKUP inc "$uri" -o "$dir" --bitmap b0 -q
manifest=$(cat "$dir/manifest.json")

# 1. The last backup's checksum list is missing.
mv "$dir/backup-0001.sums" "$tmpdir/saved.sums"
expect_refusal "the checksum list $dir/backup-0001.sums of backup 1 is missing" \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0
grep -qF "run 'nbdcbt-backup verify $dir'" "$tmpdir/out"
test ! -e "$dir/backup-0002.qcow2"
expect_error "backup-0001.sums: No such file or directory" \
  $BACKUP verify "$dir"
mv "$tmpdir/saved.sums" "$dir/backup-0001.sums"

# 2. An earlier backup's checksum list is missing.
mv "$dir/backup-0000.sums" "$tmpdir/saved.sums"
expect_refusal "the checksum list $dir/backup-0000.sums of backup 0 is missing" \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0
test ! -e "$dir/backup-0002.qcow2"
mv "$tmpdir/saved.sums" "$dir/backup-0000.sums"

# 3. The last backup's checksum list is damaged.
cp "$dir/backup-0001.sums" "$tmpdir/saved.sums"
echo "zero 0 65536" >> "$dir/backup-0001.sums"
expect_refusal "the checksum list $dir/backup-0001.sums of backup 1 is damaged" \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0
test ! -e "$dir/backup-0002.qcow2"
cp "$tmpdir/saved.sums" "$dir/backup-0001.sums"

# 4. An earlier backup's file is truncated, or has grown.
cp "$dir/backup-0000.qcow2" "$tmpdir/saved.qcow2"
truncate -s -65536 "$dir/backup-0000.qcow2"
expect_refusal "the file $dir/backup-0000.qcow2 of backup 0 is not of the size it was written with" \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0
cp "$tmpdir/saved.qcow2" "$dir/backup-0000.qcow2"
echo garbage >> "$dir/backup-0000.qcow2"
expect_refusal "the file $dir/backup-0000.qcow2 of backup 0 is not of the size it was written with" \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0
test ! -e "$dir/backup-0002.qcow2"
cp "$tmpdir/saved.qcow2" "$dir/backup-0000.qcow2"

# Repaired, the chain takes an incremental again.
$BACKUP verify -q "$dir"
$BACKUP inc "$uri" -o "$dir" --bitmap b0 -q
$BACKUP verify -q "$dir"
manifest=$(cat "$dir/manifest.json")
chain_id=$($PYTHON -c 'import json,sys; print(json.load(open(sys.argv[1]))["chain-id"])' "$dir/manifest.json")

# --auto: says why, then starts a new chain; the old one is kept whole.
rm "$dir/backup-0002.sums"
$BACKUP auto "$uri" -o "$dir" --bitmap b0 > "$tmpdir/out"
cat "$tmpdir/out"
grep -qF "backup-0002.sums of backup 2 is missing" "$tmpdir/out"
grep -q "; taking a full backup" "$tmpdir/out"
stop_qemu
test -f "$dir/chain-$chain_id/backup-0002.qcow2"
$BACKUP list "$dir" | grep -q '^0 *full'
$BACKUP verify -q "$dir"
$BACKUP restore "$dir" -o "$tmpdir/restored.raw" -q
qemu-img compare -q -f raw -F qcow2 "$tmpdir/restored.raw" "$img"
