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

# Chains in S3 against a real server (Ceph's RADOS Gateway, which checks
# every signature): full and incremental backups stream into s3://,
# every object is a standard qcow2 file (qemu-img check on a download),
# verify and restore --until N read it back bit-identical, a damaged
# object is found, wrong credentials are refused with S3's own error,
# and the backup's memory does not grow with the disk.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$top_srcdir/tests/backup/backup-functions.sh"
source "$srcdir/s3-functions.sh"
start_s3
echo "[$SECONDS s] server up"

img=$tmpdir/disk.qcow2
url=s3://$bucket/vm1/disk0
qemu-img create -q -f qcow2 "$img" 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 9M' -c 'write -P 0x22 20M 3M' \
  -c 'write -z 30M 1M' -c 'write -P 0x33 63M 1M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0

# Point 0: a full backup, more than one part (5M parts).
serve_qemu "$img" -B b0
$BACKUP full "$uri" -o "$url" --bitmap b0 "${S3[@]}" --s3-part-size 5M
stop_qemu
qemu-img convert -U -O raw "$img" "$tmpdir/point0.raw"

# Points 1 and 2: incrementals (data, zeroes, a discard).
random_writes "$img" 1
serve_qemu "$img" -B b0
$BACKUP inc "$uri" -o "$url" --bitmap b0 "${S3[@]}"
stop_qemu
qemu-img convert -U -O raw "$img" "$tmpdir/point1.raw"
random_writes "$img" 2
qemu-io -f qcow2 -c 'write -P 0x44 40M 12M' "$img" >/dev/null
serve_qemu "$img" -B b0
$BACKUP inc "$uri" -o "$url" --bitmap b0 "${S3[@]}" --s3-part-size 5M
stop_qemu
qemu-img convert -U -O raw "$img" "$tmpdir/point2.raw"

# The objects: a manifest, three layers and their checksum lists, and no
# unfinished upload.
s3_keys vm1/disk0/ | tee "$tmpdir/keys"
[ "$(grep -c '\.qcow2$' "$tmpdir/keys")" -eq 3 ]
[ "$(grep -c '\.sums$' "$tmpdir/keys")" -eq 3 ]
grep -qx vm1/disk0/manifest.json "$tmpdir/keys"
[ -z "$(s3_uploads vm1/disk0/)" ]

# Each layer, downloaded, is a clean qcow2 file backed by the previous.
prev=
for key in $(grep '\.qcow2$' "$tmpdir/keys"); do
  f=$tmpdir/$(basename "$key")
  s3_get "$key" "$f"
  qemu-img check -q "$f"
  backing=$(qemu-img info --output=json "$f" | jq -r '."backing-filename" // ""')
  [ "$backing" = "$prev" ]
  prev=$(basename "$key")
done
# The downloaded chain is the disk at point 2, read by QEMU.
qemu-img compare -q -f raw "$tmpdir/point2.raw" "$f"

$BACKUP verify "$url" "${S3[@]}"
$BACKUP list "$url" "${S3[@]}" | tee "$tmpdir/list"
grep -q '^2 *incremental' "$tmpdir/list"

# Restores at every point, bit-identical.
for n in 0 1 2; do
    rm -f "$tmpdir/r.raw"
  $BACKUP restore "$url" --until $n -o "$tmpdir/r.raw" "${S3[@]}"
  cmp "$tmpdir/r.raw" "$tmpdir/point$n.raw"
done
$BACKUP restore "$url" --until 1 -O qcow2 -o "$tmpdir/r.qcow2" "${S3[@]}"
qemu-img compare -q -F raw "$tmpdir/r.qcow2" "$tmpdir/point1.raw"
# A point brought home as a new chain in a local directory.
$BACKUP restore "$url" --until 1 -O qcow2 -o "$tmpdir/home/" "${S3[@]}"
$BACKUP verify "$tmpdir/home"
qemu-img check -q "$tmpdir/home/backup-0000.qcow2"
$BACKUP restore "$tmpdir/home" -o "$tmpdir/r.raw"
cmp "$tmpdir/r.raw" "$tmpdir/point1.raw"
expect_error 'already holds a backup chain' \
  $BACKUP restore "$url" -O qcow2 -o "$tmpdir/home/" "${S3[@]}"
echo "[$SECONDS s] restores done"


# Credentials that S3 refuses: its own error code, said clearly.
expect_error 'SignatureDoesNotMatch' \
  env AWS_SECRET_ACCESS_KEY=wrong $BACKUP list "$url" "${S3[@]}" --s3-retries 0
grep -q 'credentials are wrong' "$tmpdir/out"
expect_error 'InvalidAccessKeyId' \
  env AWS_ACCESS_KEY_ID=NOSUCHKEY $BACKUP verify "$url" "${S3[@]}"
expect_error 'no S3 credentials' \
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY $BACKUP list "$url" "${S3[@]}"
expect_error 'must start with https://' \
  $BACKUP list "$url" --s3-endpoint "127.0.0.1:1"
# A missing bucket.
expect_error "bucket 'nosuchbucket' does not exist" \
  $BACKUP list s3://nosuchbucket/x "${S3[@]}"

# A damaged layer is found by verify, and restore refuses it.
key=$(grep 'backup-0001.*\.qcow2$' "$tmpdir/keys")
s3_get "$key" "$tmpdir/layer1"
cp "$tmpdir/layer1" "$tmpdir/layer1.bad"
# A byte of the first data cluster (just after the one-cluster header).
printf '\xff' | dd of="$tmpdir/layer1.bad" bs=1 seek=65600 conv=notrunc status=none
s3curl -T "$tmpdir/layer1.bad" "/$bucket/$key" >/dev/null
expect_error 'checksum mismatch' $BACKUP verify "$url" "${S3[@]}"
expect_error 'is damaged' $BACKUP restore "$url" -o "$tmpdir/x.raw" "${S3[@]}"
s3curl -T "$tmpdir/layer1" "/$bucket/$key" >/dev/null
$BACKUP verify "$url" "${S3[@]}" -q

echo "[$SECONDS s] errors done"

# Memory: the peak RSS of a full backup of a 16M and of a 256M disk of
# random data differs by far less than the disk (parts in flight and the
# first part are bounded; the tables are 1/8192 of the data).
rss_of_full ()
{
  local size=$1 raw=$tmpdir/big.raw
  rm -f "$raw"
  $PYTHON -c 'import os,sys
with open(sys.argv[1],"wb") as f:
    for i in range(int(sys.argv[2])): f.write(os.urandom(1<<20))' "$raw" "$size"
  rm -f "$tmpdir/npid" "$tmpdir/nsock"
  nbdkit -f -U "$tmpdir/nsock" -P "$tmpdir/npid" file "$raw" &
  local npid=$!
  wait_for_file "$tmpdir/npid"
  /usr/bin/time -f %M -o "$tmpdir/rss" \
    $BACKUP full "nbd+unix:///?socket=$tmpdir/nsock" -o "s3://$bucket/mem$size" \
    "${S3[@]}" -q
  kill $npid; wait $npid || :
  $BACKUP verify "s3://$bucket/mem$size" "${S3[@]}" -q
  rm -f "$raw"
  tail -n1 "$tmpdir/rss"
}
requires /usr/bin/time --version
small=$(rss_of_full 16)
large=$(rss_of_full 256)
echo "peak RSS: 16M disk ${small} KiB, 256M disk ${large} KiB"
echo "[$SECONDS s] memory done"
[ $(( large - small )) -lt $(( 48 * 1024 )) ]
