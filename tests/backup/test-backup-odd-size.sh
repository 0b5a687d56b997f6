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

# A disk whose size is not a multiple of 512 (10000001 bytes): QEMU
# rounds a qcow2 image's size down to 512 bytes, so the backups are made
# 10000384 bytes (the tail reads as zero) while the manifest keeps the
# true size.  qemu-img sees every byte of the disk in each point of the
# chain, restore writes exactly the disk, verify passes.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"
requires nbdkit memory --version
requires nbdcopy --version

size=10000001
padded=10000384

# check_point QCOW2 RAW: qemu-img reads QCOW2 as RAW followed by zeroes
# up to the next multiple of 512.
check_point ()
{
  qemu-img info --output=json "$1" > "$tmpdir/info.json"
  vsize=$($PYTHON -c 'import json,sys; print(json.load(open(sys.argv[1]))["virtual-size"])' "$tmpdir/info.json")
  if [ "$vsize" -ne $padded ]; then
    echo "$0: qemu-img sees $1 as $vsize bytes, expected $padded" >&2
    exit 1
  fi
  rm -f "$tmpdir/converted.raw"
  qemu-img convert -f qcow2 -O raw "$1" "$tmpdir/converted.raw"
  $PYTHON - "$tmpdir/converted.raw" "$2" $size $padded <<'EOT'
import sys
got = open(sys.argv[1], "rb").read()
want = open(sys.argv[2], "rb").read()
size, padded = int(sys.argv[3]), int(sys.argv[4])
assert len(want) == size, len(want)
if len(got) != padded:
    sys.exit("qemu-img convert gave %d bytes, expected %d" % (len(got), padded))
if got[:size] != want:
    n = next(i for i in range(size) if got[i] != want[i])
    sys.exit("qemu-img convert differs from the disk at offset %d" % n)
if got[size:] != bytes(padded - size):
    sys.exit("the padding after the disk does not read as zero")
EOT
}

# 1. nbdkit's memory disk, random data up to the last byte: a full backup.
rm -f "$tmpdir/npid"
nbdkit -f -U "$tmpdir/nsock" -P "$tmpdir/npid" memory $size &
npid=$!
cleanup_fn "kill $npid 2>/dev/null; wait $npid 2>/dev/null"
wait_for_file "$tmpdir/npid" 30
nuri="nbd+unix:///?socket=$tmpdir/nsock"
$PYTHON - "$tmpdir/nsock" <<'EOT'
import nbd, random, sys
h = nbd.NBD()
h.connect_unix(sys.argv[1])
size = h.get_size()
r = random.Random(1)
h.pwrite(bytes(r.randrange(256) for i in range(1 << 20)), 0)
h.pwrite(bytes(r.randrange(1, 256) for i in range(4096)), size - 4096)
h.shutdown()
EOT
nbdcopy "$nuri" "$tmpdir/nbdkit.raw"
$BACKUP full "$nuri" -o "$tmpdir/b1" -q
kill $npid; wait $npid 2>/dev/null || :
$BACKUP list "$tmpdir/b1" | grep -q "^virtual size: $size\$"
$BACKUP verify "$tmpdir/b1" -q
check_point "$tmpdir/b1/backup-0000.qcow2" "$tmpdir/nbdkit.raw"
$BACKUP restore "$tmpdir/b1" -o "$tmpdir/restored.raw" -q
cmp "$tmpdir/restored.raw" "$tmpdir/nbdkit.raw"
$BACKUP restore "$tmpdir/b1" -o "$tmpdir/restored.qcow2" -O qcow2 -q
check_point "$tmpdir/restored.qcow2" "$tmpdir/nbdkit.raw"

# 2. Incrementals (nbdcbt's dirty filter on an odd-sized memory disk),
# changing the last, partial sector each time.
requires_built server/nbdcbt plugins/memory/.libs/nbdcbt-memory-plugin.so \
  filters/dirty/.libs/nbdcbt-dirty-filter.so
dir=$tmpdir/b2
start_server "$tmpdir/pid" "$tmpdir/sock" \
  --filter=dirty memory size=$size bitmap=b0
uri="nbd+unix:///?socket=$tmpdir/sock"
for n in 0 1 2; do
  write_odd_round "$tmpdir/sock" $n
  if [ $n -eq 0 ]; then
    $BACKUP full "$uri" -o "$dir" --bitmap b0 -q
  else
    $BACKUP inc "$uri" -o "$dir" --bitmap b0 -q
  fi
  nbdcopy "$uri" "$tmpdir/point-$n.raw"
done
$BACKUP verify "$dir" -q
for n in 0 1 2; do
  check_point "$dir/backup-000$n.qcow2" "$tmpdir/point-$n.raw"
  $BACKUP restore "$dir" --until $n -o "$tmpdir/restored.raw" -q
  cmp "$tmpdir/restored.raw" "$tmpdir/point-$n.raw"
done

# 3. Prune: the merged full backups are padded like the others and every
# remaining point still restores exactly.
$BACKUP prune "$dir" --keep 2 -q
check_point "$dir/full-0001.qcow2" "$tmpdir/point-1.raw"
$BACKUP prune "$dir" --keep 1 -q
$BACKUP verify "$dir" -q
check_point "$dir/full-0002.qcow2" "$tmpdir/point-2.raw"
$BACKUP restore "$dir" --until 2 -o "$tmpdir/restored.raw" -q
cmp "$tmpdir/restored.raw" "$tmpdir/point-2.raw"

# 4. The manifest's virtual size is checked against the size each
# checksum list records: an edit within the 512-byte rounding of the
# qcow2 files (10000002 bytes, still 10000384 rounded) used to pass
# verify and make restore write a disk one byte too long.
cp -a "$tmpdir/b1" "$tmpdir/b4"
grep -qx "size $size" <(sed -n 2p "$tmpdir/b4/backup-0000.sums")
$PYTHON - "$tmpdir/b4/manifest.json" $((size + 1)) <<'EOT'
import json, sys
m = json.load(open(sys.argv[1]))
m["virtual-size"] = int(sys.argv[2])
json.dump(m, open(sys.argv[1], "w"))
EOT
for cmd in "verify $tmpdir/b4" "restore $tmpdir/b4 -o $tmpdir/r4.raw"; do
  if $BACKUP $cmd -q 2> "$tmpdir/err"; then
    echo "$0: $cmd passed with a damaged virtual size" >&2
    exit 1
  fi
  cat "$tmpdir/err"
  grep -q "the manifest's virtual size is $((size + 1)) bytes, the backup was of a disk of $size" "$tmpdir/err"
done
[ ! -e "$tmpdir/r4.raw" ]

# A list written before the size line (version 1) is still read.
rm -rf "$tmpdir/b4"
cp -a "$tmpdir/b1" "$tmpdir/b4"
$PYTHON - "$tmpdir/b4" <<'EOT'
import hashlib, json, sys
d = sys.argv[1]
lines = open(d + "/backup-0000.sums").read().split("\n")
assert lines[0].startswith("nbdcbt-backup-sums 2 ") and lines[1].startswith("size ")
lines[0] = lines[0].replace(" 2 ", " 1 ", 1)
del lines[1]
text = "\n".join(lines).encode()
open(d + "/backup-0000.sums", "wb").write(text)
m = json.load(open(d + "/manifest.json"))
m["backups"][0]["sums-sha256"] = hashlib.sha256(text).hexdigest()
json.dump(m, open(d + "/manifest.json", "w"))
EOT
$BACKUP verify "$tmpdir/b4" -q
$BACKUP restore "$tmpdir/b4" -o "$tmpdir/r4.raw" -q
cmp "$tmpdir/r4.raw" "$tmpdir/nbdkit.raw"
