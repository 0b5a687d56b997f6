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

# The chain's record of the disk: an incremental of another disk is
# refused when the --disk-id, the export name or the export description
# (NBD_INFO_DESCRIPTION, qemu-nbd -D) differ, even where the disks are
# identical in the areas the spot check samples.  --auto then takes a
# full backup and keeps the old chain aside.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"

# A and B are copies of one image; B changed at 100M before its bitmap
# was added, so B's bitmap does not know B differs from A there.
a=$tmpdir/a.qcow2
b=$tmpdir/b.qcow2
dir=$tmpdir/backups
qemu-img create -q -f qcow2 "$a" 256M
qemu-io -f qcow2 -c 'write -P 0x55 0 8M' -c 'write -P 0x66 200M 1M' \
  "$a" >/dev/null
cp "$a" "$b"
qemu-io -f qcow2 -c 'write -P 0x99 100M 64k' "$b" >/dev/null
qemu-img bitmap --add "$a" b0
qemu-img bitmap --add "$b" b0

serve_qemu "$a" -B b0
$BACKUP full "$uri" -o "$dir" --bitmap b0 --disk-id vm1-sda -q
stop_qemu
$BACKUP list "$dir" | grep -q '^disk id: *vm1-sda$'
manifest=$(cat "$dir/manifest.json")

# B under another --disk-id, or under none.
serve_qemu "$b" -B b0
expect_refusal "the chain belongs to --disk-id 'vm1-sda', not 'vm2-sda'" \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0 --disk-id vm2-sda
expect_refusal "the chain belongs to --disk-id 'vm1-sda', this backup gives no --disk-id" \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0
stop_qemu

# A under another export name.
serve_qemu "$a" -B b0 -x other
expect_refusal 'the chain was taken from export "", this is export "other"' \
  $BACKUP inc "nbd+unix:///other?socket=$tmpdir/sock" -o "$dir" \
  --bitmap b0 --disk-id vm1-sda
stop_qemu

# A as it was: fine.
serve_qemu "$a" -B b0
$BACKUP inc "$uri" -o "$dir" --bitmap b0 --disk-id vm1-sda -q
stop_qemu
manifest=$(cat "$dir/manifest.json")
chain_id=$($PYTHON -c 'import json,sys; print(json.load(open(sys.argv[1]))["chain-id"])' "$dir/manifest.json")

# --auto with B's id: says why, takes a full backup of B, old chain kept.
serve_qemu "$b" -B b0
$BACKUP inc --auto "$uri" -o "$dir" --bitmap b0 --disk-id vm2-sda \
  > "$tmpdir/out"
cat "$tmpdir/out"
grep -qF "the chain belongs to --disk-id 'vm1-sda', not 'vm2-sda'; taking a full backup" \
  "$tmpdir/out"
stop_qemu
test -f "$dir/chain-$chain_id/backup-0001.qcow2"
$BACKUP verify "$dir/chain-$chain_id" -q
$BACKUP restore "$dir" -o "$tmpdir/restored.raw" -q
qemu-img compare -q -f raw -F qcow2 "$tmpdir/restored.raw" "$b"

# A chain started without --disk-id refuses one given later.
serve_qemu "$a" -B b0
$BACKUP full "$uri" -o "$tmpdir/noid" --bitmap b0 -q
dir=$tmpdir/noid
manifest=$(cat "$dir/manifest.json")
expect_refusal "the chain was started without --disk-id, this backup gives --disk-id 'x'" \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0 --disk-id x
stop_qemu

# The export description (qemu-nbd -D): recorded, compared.
dir=$tmpdir/desc
serve_qemu "$a" -B b0 -D "disk A"
$BACKUP full "$uri" -o "$dir" --bitmap b0 -q
stop_qemu
$BACKUP list "$dir" | grep -q '^description: *"disk A"$'
manifest=$(cat "$dir/manifest.json")
serve_qemu "$b" -B b0 -D "disk B"
expect_refusal 'the chain'"'"'s export had the description "disk A", this one has "disk B"' \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0
stop_qemu
serve_qemu "$b" -B b0
expect_refusal 'the chain'"'"'s export had the description "disk A", this one has none' \
  $BACKUP inc "$uri" -o "$dir" --bitmap b0
stop_qemu
serve_qemu "$a" -B b0 -D "disk A"
$BACKUP inc "$uri" -o "$dir" --bitmap b0 -q
stop_qemu
$BACKUP verify "$dir" -q
