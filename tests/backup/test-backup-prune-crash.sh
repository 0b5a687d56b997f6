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

# nbdcbt-backup prune killed with SIGKILL: at each step of its procedure
# (NBDCBT_BACKUP_TEST_CRASH makes it kill itself there), and at random
# moments of real runs.  After every kill the chain verifies and every
# point its manifest lists restores bit-identical to the disk at backup
# time; the next prune finishes (or redoes) the work, and so does a
# backup taken in between.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"

img=$tmpdir/disk.qcow2
make_chain "$img" "$tmpdir/pristine"
dir=$tmpdir/backups

# after_kill: the chain is sound, then a prune completes the job.
after_kill ()
{
  check_points "$dir"
  $BACKUP prune "$dir" --keep 2 -q
  test "$(chain_indexes "$dir")" = "4 5"
  check_points "$dir"
  test "$(cd "$dir" && ls)" = "$(printf '%s\n' backup-0005.qcow2 \
    backup-0005.sums full-0004.qcow2 full-0004.sums manifest.json)"
}

# Every step.
for step in written pending rebased pruned; do
  rm -rf "$dir"
  cp -a "$tmpdir/pristine" "$dir"
  rc=0
  NBDCBT_BACKUP_TEST_CRASH=$step $BACKUP prune "$dir" --keep 2 -q || rc=$?
  test $rc -eq 137
  echo "killed at $step: the manifest lists $(chain_indexes "$dir")"
  case $step in
  written|pending|rebased) test "$(chain_indexes "$dir")" = "0 1 2 3 4 5" ;;
  pruned) test "$(chain_indexes "$dir")" = "4 5" ;;
  esac
  case $step in
  pending|rebased) $BACKUP list "$dir" | grep -q 'interrupted prune' ;;
  esac
  after_kill
done

# A pending prune whose new full backup was damaged meanwhile: verify
# says so, and the next prune undoes it (backup 5 rebased back onto
# backup 4) before pruning afresh.
rm -rf "$dir"
cp -a "$tmpdir/pristine" "$dir"
NBDCBT_BACKUP_TEST_CRASH=rebased $BACKUP prune "$dir" --keep 2 -q || :
qemu-img info "$dir/backup-0005.qcow2" | grep -q '^backing file: full-0004'
$PYTHON - "$dir/full-0004.qcow2" <<'EOT'
import subprocess, json, sys
m = json.loads(subprocess.check_output(
    ["qemu-img", "map", "--output=json", "-f", "qcow2", sys.argv[1]]))
off = next(e["offset"] for e in m if e["data"])
with open(sys.argv[1], "r+b") as f:
    f.seek(off + 7)
    b = f.read(1)
    f.seek(off + 7)
    f.write(bytes([b[0] ^ 0x01]))
EOT
if $BACKUP verify -q "$dir" 2>"$tmpdir/err"; then
  echo "$0: a damaged pending full backup was not noticed" >&2; exit 1
fi
grep -q 'full-0004.qcow2: checksum mismatch' "$tmpdir/err"
$BACKUP prune "$dir" --keep 2 2>"$tmpdir/err" >/dev/null
grep -q 'is damaged; undoing that prune' "$tmpdir/err"
test "$(chain_indexes "$dir")" = "4 5"
check_points "$dir"

# A backup while a prune is pending keeps it (and the files it needs).
rm -rf "$dir"
cp -a "$tmpdir/pristine" "$dir"
NBDCBT_BACKUP_TEST_CRASH=rebased $BACKUP prune "$dir" --keep 2 -q || :
random_writes "$img" 6
serve_qemu "$img" -B b0
$BACKUP inc "$uri" -o "$dir" --bitmap b0 -q
stop_qemu
qemu-img convert -f qcow2 -O raw "$img" "$tmpdir/point-6.raw"
$BACKUP list "$dir" | grep -q 'interrupted prune'
check_points "$dir"
$BACKUP prune "$dir" --keep 2 -q
test "$(chain_indexes "$dir")" = "5 6"
check_points "$dir"

# Random moments of real runs: first how long a whole prune takes.
rm -rf "$dir"
cp -a "$tmpdir/pristine" "$dir"
start=$(date +%s%N)
$BACKUP prune "$dir" --keep 2 -q
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "a prune takes $ms ms"
RANDOM=15
for round in 1 2 3 4 5 6 7 8; do
  rm -rf "$dir"
  cp -a "$tmpdir/pristine" "$dir"
  delay=$(( RANDOM % (ms + ms / 5 + 1) ))
  $BACKUP prune "$dir" --keep 2 -q &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  kill -9 $pid 2>/dev/null || :
  wait $pid 2>/dev/null || :
  echo "round $round: killed after $delay ms; the manifest lists" \
    "$(chain_indexes "$dir")$($BACKUP list "$dir" |
      grep -q 'interrupted prune' && echo ' (prune pending)')"
  after_kill
done
