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


# nbdcbt-backup prune on a chain in S3 (Ceph's RADOS Gateway): the merged
# full backup is streamed into a multipart upload, the next backup is
# rebased by a copy committed over it, the manifest switched and the
# merged objects deleted.  Killed (SIGKILL) at each step, the chain still
# verifies and restores every point it lists, and the next prune finishes
# the job; no object or unfinished upload is left behind.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$top_srcdir/tests/backup/backup-functions.sh"
source "$srcdir/s3-functions.sh"
start_s3

img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 "$img" 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 9M' -c 'write -P 0x22 20M 3M' \
  -c 'write -P 0x33 63M 1M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0

# A chain of a full backup and three incrementals, in S3; the disk as of
# each point in $tmpdir/point-N.raw.
url=s3://$bucket/pristine
for n in 0 1 2 3; do
  [ $n -eq 0 ] || random_writes "$img" $n
  serve_qemu "$img" -B b0
  $BACKUP auto "$uri" -o "$url" --bitmap b0 -q "${S3[@]}"
  stop_qemu
  qemu-img convert -U -f qcow2 -O raw "$img" "$tmpdir/point-$n.raw"
  qemu-img bitmap --clear "$img" b0
done

# copy_chain PREFIX: the pristine chain's objects under PREFIX.
copy_chain ()
{
  local key
  for key in $(s3_keys pristine/); do
    s3curl -X PUT -H "x-amz-copy-source: /$bucket/$key" \
      "/$bucket/$1/${key#pristine/}" >/dev/null
  done
}

# keys_of PREFIX: its keys on one line, the chain id in the names
# (backup-0003-ID.qcow2) left out.
keys_of ()
{
  s3_keys "$1" | sed 's/-[0-9a-f]\{8\}\././' | xargs
}

# check_s3_points URL: verify, and every listed point restores exactly.
check_s3_points ()
{
  local n
  $BACKUP verify -q "$1" "${S3[@]}"
  for n in $($BACKUP list "$1" "${S3[@]}" | awk '$2 == "full" ||
                                                  $2 == "incremental" { print $1 }'); do
    rm -f "$tmpdir/r.raw"
    $BACKUP restore "$1" --until $n -o "$tmpdir/r.raw" -q "${S3[@]}"
    cmp "$tmpdir/r.raw" "$tmpdir/point-$n.raw"
  done
}

# --keep 2: backups 0-2 merged into full-0002.qcow2.
copy_chain keep2
$BACKUP prune "s3://$bucket/keep2" --keep 2 "${S3[@]}"
$BACKUP list "s3://$bucket/keep2" "${S3[@]}" | tee "$tmpdir/list"
test "$(awk '$2 == "full" || $2 == "incremental" { print $1 }' \
        "$tmpdir/list" | xargs)" = "2 3"
check_s3_points "s3://$bucket/keep2"
test "$(keys_of keep2/)" = "keep2/backup-0003.qcow2 \
keep2/backup-0003.sums keep2/full-0002.qcow2 keep2/full-0002.sums \
keep2/manifest.json"
test -z "$(s3_uploads keep2/)"
# The objects are standard qcow2 files: QEMU reads the pruned chain.
for key in $(s3_keys keep2/ | grep 'qcow2$'); do
  s3_get "$key" "$tmpdir/$(basename "$key")"
done
qemu-img check -q "$tmpdir"/full-0002-*.qcow2
mv "$tmpdir"/backup-0003-*.qcow2 "$tmpdir/backup-0003.qcow2"
qemu-img compare -q -f qcow2 -F raw "$tmpdir/backup-0003.qcow2" \
  "$tmpdir/point-3.raw"

# --keep 1.
copy_chain keep1
$BACKUP prune "s3://$bucket/keep1" --keep 1 -q "${S3[@]}"
check_s3_points "s3://$bucket/keep1"
test "$(keys_of keep1/)" = "keep1/full-0003.qcow2 \
keep1/full-0003.sums keep1/manifest.json"

# Killed at each step.
for step in written pending rebased pruned; do
  copy_chain "crash-$step"
  u="s3://$bucket/crash-$step"
  rc=0
  NBDCBT_BACKUP_TEST_CRASH=$step $BACKUP prune "$u" --keep 2 -q \
    "${S3[@]}" || rc=$?
  test $rc -eq 137
  echo "killed at $step:" $($BACKUP list "$u" "${S3[@]}" | tail -n +8)
  check_s3_points "$u"
  $BACKUP prune "$u" --keep 2 -q "${S3[@]}"
  check_s3_points "$u"
  test "$(keys_of "crash-$step/")" = "crash-$step/backup-0003.qcow2 \
crash-$step/backup-0003.sums crash-$step/full-0002.qcow2 \
crash-$step/full-0002.sums crash-$step/manifest.json"
  test -z "$(s3_uploads "crash-$step/")"
done
