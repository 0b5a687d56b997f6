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

# nbdcbt-backup prune: a full backup and five incrementals pruned to two
# points, then to one, with an incremental in between; every remaining
# point restores bit-identical to the disk at backup time, qemu-img sees
# a standard chain, and bad inputs are refused with the chain unchanged.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"

img=$tmpdir/disk.qcow2
make_chain "$img" "$tmpdir/pristine"

# --keep 2: backups 0-4 merged into full-0004.qcow2, backup 5 on top.
dir=$tmpdir/keep2
cp -a "$tmpdir/pristine" "$dir"
$BACKUP prune "$dir" --keep 2
$BACKUP list "$dir"
test "$(chain_indexes "$dir")" = "4 5"
check_points "$dir"
test "$(cd "$dir" && ls)" = "$(printf '%s\n' backup-0005.qcow2 \
  backup-0005.sums full-0004.qcow2 full-0004.sums manifest.json)"
qemu-img info --backing-chain "$dir/backup-0005.qcow2" > "$tmpdir/info"
grep -q '^backing file: full-0004.qcow2 ' "$tmpdir/info"
test "$(grep -c '^image: ' "$tmpdir/info")" -eq 2
qemu-img check -q "$dir/full-0004.qcow2"
qemu-img compare -q -f qcow2 -F raw "$dir/full-0004.qcow2" \
  "$tmpdir/point-4.raw"
qemu-img compare -q -f qcow2 -F raw "$dir/backup-0005.qcow2" \
  "$tmpdir/point-5.raw"
# The merged points are gone, said clearly.
expect_error "there is no backup 3 (the chain has 4 to 5; older backups " \
  $BACKUP restore "$dir" --until 3 -o "$tmpdir/restored.raw"

# An incremental after the prune is numbered on (6) and backed by 5.
random_writes "$img" 6
serve_qemu "$img" -B b0
$BACKUP inc "$uri" -o "$dir" --bitmap b0 -q
stop_qemu
qemu-img convert -f qcow2 -O raw "$img" "$tmpdir/point-6.raw"
test "$(chain_indexes "$dir")" = "4 5 6"
check_points "$dir"

# --keep 1: the whole chain becomes one full backup, 6.
$BACKUP prune "$dir" --keep 1 -q
test "$(chain_indexes "$dir")" = "6"
test "$(cd "$dir" && ls)" = "$(printf '%s\n' full-0006.qcow2 \
  full-0006.sums manifest.json)"
check_points "$dir"
qemu-img compare -q -f qcow2 -F raw "$dir/full-0006.qcow2" \
  "$tmpdir/point-6.raw"

# --keep 1 on the pristine chain directly (five incrementals merged).
dir=$tmpdir/keep1
cp -a "$tmpdir/pristine" "$dir"
$BACKUP prune "$dir" --keep 1 -q
test "$(chain_indexes "$dir")" = "5"
check_points "$dir"

# Nothing to prune: nothing changes.
dir=$tmpdir/keep6
cp -a "$tmpdir/pristine" "$dir"
$BACKUP prune "$dir" --keep 6 | grep -q 'nothing to prune'
diff -r "$tmpdir/pristine" "$dir"

# Bad inputs: refused clearly, nothing changed.
manifest=$(cat "$dir/manifest.json")
expect_refusal "--keep 0: a chain keeps at least one restore point" \
  $BACKUP prune "$dir" --keep 0
expect_refusal "--keep: 'x' is not a number" $BACKUP prune "$dir" --keep x
expect_refusal "prune: how many restore points to keep? (--keep N)" \
  $BACKUP prune "$dir"
expect_refusal "list: --keep is an option of 'prune'" \
  $BACKUP list "$dir" --keep 2
expect_error "prune: $tmpdir/missing: No such file or directory" \
  $BACKUP prune "$tmpdir/missing" --keep 2
test ! -e "$tmpdir/missing"
mkdir "$tmpdir/empty"
expect_error "prune: $tmpdir/empty holds no backup chain" \
  $BACKUP prune "$tmpdir/empty" --keep 2
test -z "$(ls -A "$tmpdir/empty")"
diff -r "$tmpdir/pristine" "$dir"

# A chain that does not verify (a data byte flipped in backup 2) is not
# touched.
$PYTHON - "$dir/backup-0002.qcow2" <<'EOT'
import subprocess, json, sys
m = json.loads(subprocess.check_output(
    ["qemu-img", "map", "--output=json", "-f", "qcow2", sys.argv[1]]))
off = next(e["offset"] for e in m if e["data"] and e["depth"] == 0)
with open(sys.argv[1], "r+b") as f:
    f.seek(off + 100)
    b = f.read(1)
    f.seek(off + 100)
    f.write(bytes([b[0] ^ 0xff]))
EOT
# A leftover of an interrupted run stays too: a damaged chain is left as
# found.
echo leftover > "$dir/full-0009.qcow2"
cp -a "$dir" "$tmpdir/damaged"
expect_refusal "the chain does not verify; nothing was pruned" \
  $BACKUP prune "$dir" --keep 2
diff -r "$tmpdir/damaged" "$dir"
