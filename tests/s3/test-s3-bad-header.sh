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

# A layer in S3 whose header puts the backing file's name at an offset
# that wraps around when its length is added (damage, or a file not
# written by nbdcbt-backup): verify and restore refuse it as a bad
# backing file name instead of reading before the header buffer.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$top_srcdir/tests/backup/backup-functions.sh"
source "$srcdir/s3-functions.sh"
start_s3

img=$tmpdir/disk.qcow2
url=s3://$bucket/vm1/disk0
qemu-img create -q -f qcow2 "$img" 8M
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0
for n in 0 1; do
  [ $n -eq 0 ] || qemu-io -f qcow2 -c 'write -P 0x22 2M 1M' "$img" >/dev/null
  serve_qemu "$img" -B b0
  $BACKUP auto "$uri" -o "$url" --bitmap b0 -q "${S3[@]}"
  stop_qemu
  qemu-img bitmap --clear "$img" b0
done
s3_keys vm1/disk0/ > "$tmpdir/keys"
key=$(grep 'backup-0001.*\.qcow2$' "$tmpdir/keys")
s3_get "$key" "$tmpdir/layer1"
cp "$tmpdir/layer1" "$tmpdir/layer1.bad"
# backing_file_offset = 2^64 - 8, backing_file_size = 16.
printf '\xff\xff\xff\xff\xff\xff\xff\xf8\x00\x00\x00\x10' |
  dd of="$tmpdir/layer1.bad" bs=1 seek=8 conv=notrunc status=none
s3curl -T "$tmpdir/layer1.bad" "/$bucket/$key" >/dev/null
expect_error 'bad backing file name' $BACKUP verify "$url" "${S3[@]}"
expect_error 'bad backing file name' \
  $BACKUP restore "$url" -o "$tmpdir/x.raw" "${S3[@]}"
# The layer put back, the chain verifies again.
s3curl -T "$tmpdir/layer1" "/$bucket/$key" >/dev/null
$BACKUP verify "$url" "${S3[@]}" -q
