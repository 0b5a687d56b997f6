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

# A chain in S3 that cannot be verified is not extended: with the last
# backup's checksum list missing or damaged, an earlier one's missing,
# or an earlier backup's layer truncated, an incremental is refused
# (naming the object) and the prefix is left as it was; --auto says why
# and starts a new chain.
# (tests/backup/test-backup-unverifiable.sh does the same in a directory.)
source "$top_srcdir/tests/functions.sh" || exit 99
source "$top_srcdir/tests/backup/backup-functions.sh"
source "$srcdir/s3-functions.sh"
start_s3

url=s3://$bucket/u
img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 "$img" 32M
qemu-io -f qcow2 -c 'write -P 0x55 0 8M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0
serve_qemu "$img" -B b0
$BACKUP full "$uri" -o "$url" --bitmap b0 "${S3[@]}" -q
$BACKUP inc "$uri" -o "$url" --bitmap b0 "${S3[@]}" -q
s3curl "/$bucket/u/manifest.json" > "$tmpdir/m0"
s3_keys u/ > "$tmpdir/k0"
sums0=$(grep '^u/backup-0000-.*\.sums$' "$tmpdir/k0")
sums1=$(grep '^u/backup-0001-.*\.sums$' "$tmpdir/k0")
s3_get "$sums0" "$tmpdir/sums0"
s3_get "$sums1" "$tmpdir/sums1"

# unchanged: the manifest and the other keys as before, no upload left.
unchanged ()
{
  s3curl "/$bucket/u/manifest.json" | cmp - "$tmpdir/m0"
  s3_keys u/ | grep -v '\.sums$' | cmp - <(grep -v '\.sums$' "$tmpdir/k0")
  [ -z "$(s3_uploads u/)" ]
}

# 1. The last backup's checksum list is missing.
s3curl -X DELETE "/$bucket/$sums1"
expect_error "the checksum list $url/${sums1#u/} of backup 1 is missing" \
  $BACKUP inc "$uri" -o "$url" --bitmap b0 "${S3[@]}"
unchanged
expect_error "${sums1#u/}: No such file or directory" \
  $BACKUP verify "$url" "${S3[@]}"
s3curl -T "$tmpdir/sums1" "/$bucket/$sums1" >/dev/null

# 2. An earlier backup's checksum list is missing.
s3curl -X DELETE "/$bucket/$sums0"
expect_error "the checksum list $url/${sums0#u/} of backup 0 is missing" \
  $BACKUP inc "$uri" -o "$url" --bitmap b0 "${S3[@]}"
unchanged
s3curl -T "$tmpdir/sums0" "/$bucket/$sums0" >/dev/null

# 3. An earlier backup's layer is truncated.
layer0=$(grep '^u/backup-0000-.*\.qcow2$' "$tmpdir/k0")
s3_get "$layer0" "$tmpdir/layer0"
head -c 1000000 "$tmpdir/layer0" > "$tmpdir/short"
s3curl -T "$tmpdir/short" "/$bucket/$layer0" >/dev/null
expect_error "the file $url/${layer0#u/} of backup 0 is not of the size it was written with" \
  $BACKUP inc "$uri" -o "$url" --bitmap b0 "${S3[@]}"
s3curl "/$bucket/u/manifest.json" | cmp - "$tmpdir/m0"
s3_keys u/ | cmp - "$tmpdir/k0"
[ -z "$(s3_uploads u/)" ]
s3curl -T "$tmpdir/layer0" "/$bucket/$layer0" >/dev/null

# 4. The last backup's checksum list is damaged.
{ cat "$tmpdir/sums1"; echo "zero 0 65536"; } > "$tmpdir/bad.sums"
s3curl -T "$tmpdir/bad.sums" "/$bucket/$sums1" >/dev/null
expect_error "the checksum list $url/${sums1#u/} of backup 1 is damaged" \
  $BACKUP inc "$uri" -o "$url" --bitmap b0 "${S3[@]}"
unchanged

# --auto: a new chain; the old one's manifest is kept beside it.
$BACKUP auto "$uri" -o "$url" --bitmap b0 "${S3[@]}" > "$tmpdir/out"
cat "$tmpdir/out"
grep -q "of backup 1 is damaged.*; taking a full backup" "$tmpdir/out"
stop_qemu
$BACKUP list "$url" "${S3[@]}" | grep -q '^0 *full'
$BACKUP verify "$url" "${S3[@]}" -q
$BACKUP restore "$url" -o "$tmpdir/restored.raw" "${S3[@]}" -q
qemu-img compare -q -f raw -F qcow2 "$tmpdir/restored.raw" "$img"
