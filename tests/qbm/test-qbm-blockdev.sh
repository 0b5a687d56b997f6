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

# Persistent bitmaps of a block device (a loop device): the sidecar is
# given (qbm=PATH to the server, --sidecar=PATH to nbdcbt-img).  Add a
# bitmap, write through nbdcbt, kill -9, restart: the bitmap covers every
# write; after a clean stop nbdcbt-img info/map read the device + sidecar.
# Needs root and a free loop device (skipped otherwise).

source "$top_srcdir/tests/functions.sh" || exit 99
requires nbdinfo --version
requires losetup --version
if [ "$(id -u)" != 0 ]; then echo "$0: skipped: needs root for a loop device"; exit 77; fi
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || :
cd "$tmpdir"
PATH=$top_builddir/tools/img:$PATH

truncate -s 256M backing.img
if ! dev=$(losetup -f --show backing.img 2>out.txt); then
  echo "$0: skipped: no loop device: $(cat out.txt)"; exit 77
fi
cleanup_fn "losetup -d $dev"
test -b "$dev"
sc=$tmpdir/dev.qbm

nbdcbt-img bitmap --add --sidecar="$sc" "$dev" b0
nbdcbt-img info --sidecar="$sc" "$dev" | grep -q 'name: b0'

start_server pid sock --filter=dirty file "$dev" qbm="$sc"
# Writes in four places (one more after the bitmaps' first store), then
# kill -9 with nothing stored since.
$PYTHON - "$tmpdir/sock" <<'PY'
import sys, time, nbd
h = nbd.NBD(); h.connect_unix(sys.argv[1])
h.pwrite(b"\x11" * 65536, 0)
h.pwrite(b"\x22" * 4096, 100 << 20)
h.zero(1 << 20, 200 << 20)
time.sleep(0.5)
h.pwrite(b"\x33" * 512, (255 << 20) + 4096)
h.flush()
PY
kill -9 "$(cat pid)"
sleep 0.5

rm -f pid
start_server pid sock --filter=dirty file "$dev" qbm="$sc"
$PYTHON - "$tmpdir/sock" <<'PY'
import sys, nbd
h = nbd.NBD()
h.add_meta_context("qemu:dirty-bitmap:b0")
h.connect_unix(sys.argv[1])
dirty = []
size = h.get_size(); off = 0
while off < size:
    got = []
    h.block_status(min(size - off, 1 << 30), off,
                   lambda ctx, o, entries, err: got.extend(entries))
    for i in range(0, len(got), 2):
        if got[i + 1] & 1:
            dirty.append((off, off + got[i]))
        off += got[i]
def covered(a, b):
    return any(x <= a and b <= y for x, y in dirty)
for a, n in ((0, 65536), (100 << 20, 4096), (200 << 20, 1 << 20),
             ((255 << 20) + 4096, 512)):
    if not covered(a, a + n):
        sys.exit("FAIL: write at %d+%d not dirty after the crash: %r" % (a, n, dirty))
print("dirty after the crash:", dirty)
PY
stop_server pid

# The device + sidecar with nbdcbt-img: consistent again, and the map
# shows the writes.
nbdcbt-img info --sidecar="$sc" "$dev" > info.txt
cat info.txt
grep -q 'name: b0' info.txt
if grep -q 'in-use' info.txt; then echo "FAIL: still in use"; exit 1; fi
nbdcbt-img check --sidecar="$sc" "$dev"
nbdcbt-img map --bitmap b0 --output=json --sidecar="$sc" "$dev" > map.json
cat map.json
$PYTHON - map.json <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
d = [(e["offset"], e["offset"] + e["length"]) for e in m
     if e["description"] == "dirty"]
for a in (0, 100 << 20, 200 << 20, (255 << 20) + 4096):
    assert any(x <= a < y for x, y in d), (a, d)
PY
