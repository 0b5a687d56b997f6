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

# restore refuses to write over a file of the chain it restores (raw or
# -O qcow2, under its own name or through a hard or symbolic link):
# before, it truncated the file it was about to read, reported success
# and left the chain damaged.  Nor over a file of another chain of the
# same directory: the archive a new full backup moves the old chain
# into (DIR/chain-UUID/), or, restoring from that archive, the current
# chain.  A new file in the chain's directory is fine.  A raw target that is not a file or a block device is refused
# clearly (a FIFO hung, /dev/null was "smaller than the disk").
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"

img=$tmpdir/disk.qcow2
dir=$tmpdir/backups
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -f qcow2 -c 'write -P 0x55 0 4M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0
serve_qemu "$img" -B b0
$BACKUP full "$uri" -o "$dir" --bitmap b0 -q
$BACKUP inc "$uri" -o "$dir" --bitmap b0 -q
stop_qemu
(cd "$dir" && md5sum *) > "$tmpdir/sums.before"
ln "$dir/backup-0001.qcow2" "$tmpdir/hard"
ln -s "$dir/backup-0000.qcow2" "$tmpdir/soft"

for target in "$dir/backup-0000.qcow2" "$dir/backup-0001.qcow2" \
              "$dir/backup-0000.sums" "$dir/manifest.json" \
              "$dir/../backups//backup-0001.sums" "$tmpdir/hard" \
              "$tmpdir/soft"; do
  for fmt in raw qcow2; do
    expect_error "is a file of the chain being restored" \
      $BACKUP restore "$dir" -o "$target" -O $fmt
    (cd "$dir" && md5sum -c --quiet "$tmpdir/sums.before")
  done
done
$BACKUP verify -q "$dir"

# Nor a raw target that is neither a file nor a block device: a FIFO
# without a reader (opening it hung), a character device.
mkfifo "$tmpdir/fifo"
expect_error "fifo: not a regular file or a block device" \
  timeout 60 $BACKUP restore "$dir" -o "$tmpdir/fifo"
expect_error "/dev/null: not a regular file or a block device" \
  $BACKUP restore "$dir" -o /dev/null

$BACKUP restore "$dir" -o "$dir/restored.raw" -q
qemu-img compare -q -f raw -F qcow2 "$dir/restored.raw" "$img"

# A new full backup moves the chain into DIR/chain-UUID/.  Neither
# chain may be restored over a file of the other.
cp "$img" "$tmpdir/as-of-1.qcow2"
serve_qemu "$img" -B b0
qemu-io -f raw -c 'write -P 0x66 1M 1M' "$uri" >/dev/null
$BACKUP full "$uri" -o "$dir" --bitmap b0 -q
stop_qemu
old=$(echo "$dir"/chain-*)
test -f "$old/manifest.json" || { echo "no archived chain in $dir"; exit 1; }
(cd "$dir" && md5sum backup-* manifest.json) > "$tmpdir/new.before"
(cd "$old" && md5sum *) > "$tmpdir/old.before"
for target in "$old/backup-0000.qcow2" "$old/manifest.json" \
              "$old//backup-0001.sums"; do
  expect_error "is a file of another backup chain in" \
    $BACKUP restore "$dir" -o "$target"
done
for from in "$old" "$old/"; do
  for target in "$dir/backup-0000.qcow2" "$dir/manifest.json"; do
    expect_error "is a file of another backup chain in" \
      $BACKUP restore "$from" -o "$target" -O qcow2
  done
done
(cd "$dir" && md5sum -c --quiet "$tmpdir/new.before")
(cd "$old" && md5sum -c --quiet "$tmpdir/old.before")
$BACKUP verify -q "$dir"
$BACKUP verify -q "$old"

# Both still restore, to files of their own.
$BACKUP restore "$old" -o "$tmpdir/old.raw" -q
qemu-img compare -q -f raw -F qcow2 "$tmpdir/old.raw" "$tmpdir/as-of-1.qcow2"
$BACKUP restore "$dir" -o "$tmpdir/new.raw" -q
qemu-img compare -q -f raw -F qcow2 "$tmpdir/new.raw" "$img"
