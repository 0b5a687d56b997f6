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

# Safety: a missing bitmap, a resized disk and another disk's chain stop
# an incremental with a clear message (and --auto then takes a full
# backup, keeping the old chain aside).
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"

img=$tmpdir/disk.qcow2
dir=$tmpdir/backups
qemu-img create -q -f qcow2 "$img" 32M
qemu-io -f qcow2 -c 'write -P 0x55 0 32M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0
serve_qemu "$img" -B b0
$BACKUP full "$uri" -o "$dir" --bitmap b0 -q
stop_qemu
qemu-img bitmap --clear "$img" b0
manifest=$(cat "$dir/manifest.json")
chain_id=$($PYTHON -c 'import json,sys; print(json.load(open(sys.argv[1]))["chain-id"])' "$dir/manifest.json")

# 1. The bitmap is not exported (missing).
serve_qemu "$img"
expect_refusal "does not offer 'qemu:dirty-bitmap:b0'" \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0
stop_qemu

# 2. Another bitmap name than the chain's.
qemu-img bitmap --add "$img" other
serve_qemu "$img" -B other
expect_refusal "the chain follows bitmap 'b0', not 'other'" \
  $BACKUP inc "$uri" -o "$dir" --bitmap other
stop_qemu
qemu-img bitmap --remove "$img" other

# 3. Another disk of the same size, with the same bitmap name.
qemu-img create -q -f qcow2 "$tmpdir/other.qcow2" 32M
qemu-io -f qcow2 -c 'write -P 0x99 0 32M' "$tmpdir/other.qcow2" >/dev/null
qemu-img bitmap --add "$tmpdir/other.qcow2" b0
serve_qemu "$tmpdir/other.qcow2" -B b0
expect_refusal "belongs to another disk" \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0
stop_qemu

# 4. The disk was resized.
qemu-img resize -q "$img" 48M
serve_qemu "$img" -B b0
expect_refusal "the disk size changed (the chain has 33554432 bytes, the export 50331648)" \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0
$BACKUP verify "$dir" -q

# --auto: says why, then starts a new chain; the old one is kept.
$BACKUP inc --auto "$uri" -o "$dir" --bitmap b0 > "$tmpdir/out"
cat "$tmpdir/out"
grep -q "the disk size changed.*; taking a full backup" "$tmpdir/out"
stop_qemu
test -f "$dir/chain-$chain_id/manifest.json"
test -f "$dir/chain-$chain_id/backup-0000.qcow2"
$BACKUP verify "$dir/chain-$chain_id"
$BACKUP verify "$dir"
$BACKUP list "$dir" | grep -q '^virtual size: 50331648$'
new_id=$($PYTHON -c 'import json,sys; print(json.load(open(sys.argv[1]))["chain-id"])' "$dir/manifest.json")
test "$new_id" != "$chain_id"
qemu-img compare -q -f qcow2 -F qcow2 "$dir/backup-0000.qcow2" "$img"

# --auto into an empty directory takes a full backup.
serve_qemu "$img" -B b0
$BACKUP auto "$uri" -o "$tmpdir/fresh" --bitmap b0 -q
stop_qemu
$BACKUP list "$tmpdir/fresh" | grep -q '^0 *full'
