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

# The chain id names the objects of a chain in S3 (its first 8 digits):
# a manifest whose "chain-id" is not a UUID (damaged, or edited by hand:
# here it holds a '/') is refused as damaged by every command.  Before,
# verify passed and an incremental published an object named with the
# '/', after which the manifest could no longer be read.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$top_srcdir/tests/backup/backup-functions.sh"
source "$srcdir/s3-functions.sh"
start_s3

url=s3://$bucket/c
img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -f qcow2 -c 'write -P 0x55 0 4M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0
serve_qemu "$img" -B b0
$BACKUP full "$uri" -o "$url" --bitmap b0 "${S3[@]}" -q
s3curl "/$bucket/c/manifest.json" > "$tmpdir/m0"
sed 's|"chain-id": "\(..\).|"chain-id": "\1/|' "$tmpdir/m0" > "$tmpdir/m1"
grep -q '"chain-id": "../' "$tmpdir/m1"
s3curl -T "$tmpdir/m1" "/$bucket/c/manifest.json" >/dev/null
s3_keys c/ > "$tmpdir/k1"

for cmd in "verify $url" "list $url" "restore $url -o $tmpdir/r.raw" \
           "inc $uri -o $url --bitmap b0" "prune $url --keep 1"; do
  expect_error 'damaged manifest: "chain-id" is not a UUID' \
    $BACKUP $cmd "${S3[@]}"
  s3curl "/$bucket/c/manifest.json" | cmp - "$tmpdir/m1"
  s3_keys c/ | cmp - "$tmpdir/k1"
done
stop_qemu
