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

# Bitmap granularities smaller (4K: partial clusters in the incremental,
# whose rest comes from the backing file) and larger (1M) than the 64K
# qcow2 cluster: every point still restores exactly.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"

for gran in 4096 1048576; do
  img=$tmpdir/disk-$gran.qcow2
  dir=$tmpdir/backups-$gran
  qemu-img create -q -f qcow2 "$img" 16M
  qemu-io -f qcow2 -c 'write -P 0x55 0 16M' "$img" >/dev/null
  qemu-img bitmap --add -g $gran "$img" b0
  serve_qemu "$img" -B b0
  $BACKUP full "$uri" -o "$dir" --bitmap b0 -q
  stop_qemu
  qemu-img bitmap --clear "$img" b0
  for n in 1 2; do
    qemu-io -f qcow2 -c "write -P $n $(( n * 70000 )) 5000" \
      -c "write -z $(( n * 3 ))M 8192" -c "write -P 9 $(( n * 5 ))M 123456" \
      "$img" >/dev/null
    serve_qemu "$img" -B b0
    $BACKUP inc "$uri" -o "$dir" --bitmap b0 -q
    stop_qemu
    qemu-img bitmap --clear "$img" b0
    qemu-img convert -f qcow2 -O raw "$img" "$tmpdir/point-$n.raw"
    qemu-img compare -q -f qcow2 -F raw "$dir/backup-000$n.qcow2" \
      "$tmpdir/point-$n.raw"
  done
  # 4K granularity: the incremental allocates only the touched clusters.
  if [ $gran -eq 4096 ]; then
    test "$(layer_data_bytes "$dir/backup-0002.qcow2")" -le $(( 5 * 65536 ))
  fi
  $BACKUP verify "$dir" -q
  $BACKUP restore "$dir" --until 1 -o "$tmpdir/r.raw" -q
  cmp "$tmpdir/r.raw" "$tmpdir/point-1.raw"
done
