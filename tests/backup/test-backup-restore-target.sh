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
# and left the chain damaged.  A new file in the chain's directory is
# fine.  A raw target that is not a file or a block device is refused
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
