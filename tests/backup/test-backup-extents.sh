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

# The work list: dirty extents of qemu:dirty-bitmap:b0 crossed with
# base:allocation (dirty data -> data, dirty zero -> zero, clean -> clean),
# against qemu-nbd.
source "$top_srcdir/tests/functions.sh" || exit 99
source "$srcdir/backup-functions.sh"

img=$tmpdir/disk.qcow2
qemu-img create -q -f qcow2 "$img" 64M
qemu-io -f qcow2 -c 'write -P 7 0 8M' "$img" >/dev/null
qemu-img bitmap --add "$img" b0
qemu-io -f qcow2 -c 'write -P 1 0 1M' -c 'write -P 2 10M 3M' \
  -c 'write -z 20M 1M' -c 'discard 4M 1M' -c 'write -P 3 40M 64k' \
  "$img" >/dev/null

serve_qemu "$img" -B b0
$BACKUP extents "$uri" --bitmap b0 > "$tmpdir/list"
cat "$tmpdir/list"
cat > "$tmpdir/expect" <<'EOT'
0 1048576 data
1048576 3145728 clean
4194304 1048576 zero
5242880 5242880 clean
10485760 3145728 data
13631488 7340032 clean
20971520 1048576 zero
22020096 19922944 clean
41943040 65536 data
42008576 25100288 clean
EOT
diff -u "$tmpdir/expect" "$tmpdir/list"

# Without a bitmap: everything is "dirty", holes are zero.
$BACKUP extents "$uri" > "$tmpdir/list"
cat "$tmpdir/list"
head -1 "$tmpdir/list" | grep -q '^0 4194304 data$'

# A bitmap the server does not offer.
if $BACKUP extents "$uri" --bitmap nope 2> "$tmpdir/err"; then
  echo "$0: a missing bitmap was not detected" >&2; exit 1
fi
grep -q "does not offer the metadata context 'qemu:dirty-bitmap:nope'" \
  "$tmpdir/err"
stop_qemu
