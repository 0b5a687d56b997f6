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

# verify: passes on a sound chain; a flipped byte inside a data cluster,
# a zero flag planted in an L2 table, a damaged checksum list, a
# truncated file or a missing file fail it with a clear message, and
# restore refuses to use a damaged file.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"

img=$tmpdir/disk.qcow2
dir=$tmpdir/backups
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -f qcow2 -c 'write -P 0x55 0 4M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0
serve_qemu "$img" -B b0
$BACKUP full "$uri" -o "$dir" --bitmap b0 -q
stop_qemu
qemu-img bitmap --clear "$img" b0
qemu-io -f qcow2 -c 'write -P 0x66 1M 1M' "$img" >/dev/null
serve_qemu "$img" -B b0
# Backup 0 has the default sums (CRC-32C by quarters where the CPU has
# the instruction), backup 1 UMAC-128.
NBDCBT_BACKUP_SUM=umac128 $BACKUP inc "$uri" -o "$dir" --bitmap b0 -q
stop_qemu
grep -q '^nbdcbt-backup-sums 2 umac128 [0-9a-f]\{32\}$' "$dir/backup-0001.sums"

$BACKUP verify "$dir" > "$tmpdir/out"
cat "$tmpdir/out"
grep -q "backup 1 backup-0001.qcow2: ok" "$tmpdir/out"

cp -a "$dir" "$tmpdir/good"

# Flip one byte inside a data cluster of the incremental.
file=$dir/backup-0001.qcow2
host=$(qemu-img map --output=json -f qcow2 "$file" |
       $PYTHON -c '
import json, sys
print([e for e in json.load(sys.stdin) if e["data"] and e["depth"] == 0][0]["offset"])')
$PYTHON -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]) + 1000)
    b = f.read(1)
    f.seek(int(sys.argv[2]) + 1000)
    f.write(bytes([b[0] ^ 0x40]))' "$file" "$host"
# qemu-img cannot tell, verify can.
qemu-img check -q "$file"
rc=0; $BACKUP verify "$dir" > "$tmpdir/out" 2>&1 || rc=$?
cat "$tmpdir/out"
test $rc -eq 1
grep -q "backup-0001.qcow2: checksum mismatch, the file is damaged" "$tmpdir/out"
grep -q "FAILED, 1 problem found" "$tmpdir/out"
rc=0; $BACKUP restore "$dir" -o "$tmpdir/r.raw" 2> "$tmpdir/out" || rc=$?
test $rc -eq 1
grep -q "checksum mismatch" "$tmpdir/out"
# Restoring the point before the damage still works.
$BACKUP restore "$dir" --until 0 -o "$tmpdir/r.raw" -q

# A zero flag set in the L2 table of the incremental, where the backup
# wrote nothing (the range would read as zero instead of from the full
# backup): a metadata change that no refcount check sees.
rm -rf "$dir"; cp -a "$tmpdir/good" "$dir"
$PYTHON -c '
import struct, sys
with open(sys.argv[1], "r+b") as f:
    h = f.read(72)
    cluster_bits, = struct.unpack(">I", h[20:24])
    l1_offset, = struct.unpack(">Q", h[40:48])
    f.seek(l1_offset)
    l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
    i = (8 << 20) >> cluster_bits      # guest offset 8M, clean in backup 1
    f.seek(l2 + 8 * i)
    assert struct.unpack(">Q", f.read(8))[0] == 0
    f.seek(l2 + 8 * i)
    f.write(struct.pack(">Q", 1))' "$dir/backup-0001.qcow2"
qemu-img check -q "$dir/backup-0001.qcow2"
rc=0; $BACKUP verify "$dir" > "$tmpdir/out" 2>&1 || rc=$?
cat "$tmpdir/out"
test $rc -eq 1
grep -q "backup-0001.qcow2: the file is damaged: it has zero clusters at offset 8388608 that the backup did not write" "$tmpdir/out"

# A damaged checksum list.
rm -rf "$dir"; cp -a "$tmpdir/good" "$dir"
sed -i '0,/^data 0 /s//data 1 /' "$dir/backup-0000.sums"
rc=0; $BACKUP verify "$dir" > "$tmpdir/out" 2>&1 || rc=$?
cat "$tmpdir/out"
test $rc -eq 1
grep -q "backup-0000.sums: checksum mismatch, the checksum list is damaged" "$tmpdir/out"

# A truncated file.
rm -rf "$dir"; cp -a "$tmpdir/good" "$dir"
truncate -s -65536 "$dir/backup-0000.qcow2"
rc=0; $BACKUP verify "$dir" 2> "$tmpdir/out" || rc=$?
cat "$tmpdir/out"
test $rc -eq 1
grep -q "backup-0000.qcow2: the file has .* bytes, the manifest says" "$tmpdir/out"

# A missing file.
rm -rf "$dir"; cp -a "$tmpdir/good" "$dir"
rm "$dir/backup-0001.qcow2"
rc=0; $BACKUP verify "$dir" 2> "$tmpdir/out" || rc=$?
cat "$tmpdir/out"
test $rc -eq 1
grep -q "backup 1: .*backup-0001.qcow2: No such file" "$tmpdir/out"

# The sound copy still verifies, also with the portable CRC-32C code.
$BACKUP verify "$tmpdir/good" -q
NBDCBT_BACKUP_SOFT_CRC=1 $BACKUP verify "$tmpdir/good" -q

# A layer whose qcow2 header names another backing file than the
# manifest (here another image with other data): restore and inc would
# read through that name, so both refuse and write nothing.
rm -rf "$dir"; cp -a "$tmpdir/good" "$dir"
qemu-img create -q -f qcow2 "$tmpdir/other.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 0x77 0 4M' "$tmpdir/other.qcow2" >/dev/null
qemu-img rebase -u -f qcow2 -b "$tmpdir/other.qcow2" -F qcow2 \
  "$dir/backup-0001.qcow2"
before=$(cat "$dir"/* | sha256sum)
rm -f "$tmpdir/r.raw"
rc=0; $BACKUP restore "$dir" -o "$tmpdir/r.raw" 2> "$tmpdir/out" || rc=$?
cat "$tmpdir/out"
test $rc -eq 1
grep -q "backup 1 (backup-0001.qcow2) is backed by $tmpdir/other.qcow2, the manifest says backup-0000.qcow2" "$tmpdir/out"
test ! -e "$tmpdir/r.raw"
serve_qemu "$img" -B b0
rc=0; $BACKUP inc "$uri" -o "$dir" --bitmap b0 -q 2> "$tmpdir/out" || rc=$?
stop_qemu
cat "$tmpdir/out"
test $rc -eq 1
grep -q "cannot take an incremental backup.*backup 1 (backup-0001.qcow2) is backed by" "$tmpdir/out"
test ! -e "$dir/backup-0002.qcow2"
test "$(cat "$dir"/* | sha256sum)" = "$before"

# An index with no room for the next backup's (json-c saturates larger
# numbers to INT64_MAX): the manifest is refused, inc adds nothing.
for index in 9223372036854775807 99999999999999999999; do
  rm -rf "$dir"; cp -a "$tmpdir/good" "$dir"
  sed -i "s/\"index\": 1,/\"index\": $index,/" "$dir/manifest.json"
  grep -q "\"index\": $index," "$dir/manifest.json"
  before=$(cat "$dir"/* | sha256sum)
  rc=0; $BACKUP list "$dir" > /dev/null 2> "$tmpdir/out" || rc=$?
  cat "$tmpdir/out"
  test $rc -eq 1
  grep -q "damaged manifest" "$tmpdir/out"
  serve_qemu "$img" -B b0
  rc=0; $BACKUP inc "$uri" -o "$dir" --bitmap b0 -q 2> "$tmpdir/out" || rc=$?
  stop_qemu
  cat "$tmpdir/out"
  test $rc -eq 1
  test "$(ls "$dir" | wc -l)" -eq 5
  test "$(cat "$dir"/* | sha256sum)" = "$before"
done

# A chain recorded by earlier versions (the SHA-256 of each whole file
# instead of a checksum list) verifies too, and damage is still found.
rm -rf "$dir"; cp -a "$tmpdir/good" "$dir"
$PYTHON -c '
import hashlib, json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
for b in m["backups"]:
    os.unlink(os.path.join(d, b.pop("sums")))
    del b["sums-sha256"]
    b["sha256"] = hashlib.sha256(open(os.path.join(d, b["file"]), "rb").read()).hexdigest()
json.dump(m, open(os.path.join(d, "manifest.json"), "w"))' "$dir"
$BACKUP verify "$dir" -q
$BACKUP restore "$dir" --until 0 -o "$tmpdir/r.raw" -q
printf 'x' | dd of="$dir/backup-0000.qcow2" bs=1 seek=200000 conv=notrunc status=none
rc=0; $BACKUP verify "$dir" > "$tmpdir/out" 2>&1 || rc=$?
cat "$tmpdir/out"
test $rc -eq 1
grep -q "backup-0000.qcow2: checksum mismatch, the file is damaged (SHA-256" "$tmpdir/out"
