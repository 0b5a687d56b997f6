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

# Persistent bitmaps made by qemu-img and qemu-nbd, read, added, removed,
# marked in use and stored by the library; qemu-img info and check must
# agree.
source "$top_srcdir/tests/functions.sh" || exit 99
set -e
requires qemu-img --version
requires qemu-nbd --version
requires qemu-io --version

tool="$top_builddir/common/qcow2/qcow2-test-tool"
d=$(mktemp -d /tmp/qcow2-bitmaps.XXXXXX)
cleanup_fn rm -rf "$d"
cd "$d"

bitmaps_json ()
{
    qemu-img info --output=json "$1" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)["format-specific"]["data"]
for b in d.get("bitmaps", []):
    print(" ".join([b["name"], str(b["granularity"])] + b["flags"]))'
}

qemu-img create -q -f qcow2 img.qcow2 100M
qemu-img bitmap --add img.qcow2 b1
qemu-img bitmap --add -g 512k img.qcow2 b2
qemu-img bitmap --add img.qcow2 b3 --disable
# Dirty data recorded by QEMU itself (qemu-io loads enabled bitmaps).
qemu-io -f qcow2 -c 'write 0 1M' -c 'write 50M 1k' img.qcow2 >/dev/null

"$tool" bitmaps img.qcow2 list > list.txt
diff -u - list.txt <<EOF2
b1 65536 auto
b2 524288 auto
b3 65536
EOF2
"$tool" bitmaps img.qcow2 dump b1 > b1.txt
diff -u - b1.txt <<EOF2
0 1048576
52428800 65536
EOF2
"$tool" bitmaps img.qcow2 dump b2 > b2.txt
diff -u - b2.txt <<EOF2
0 1048576
52428800 524288
EOF2
test -z "$("$tool" bitmaps img.qcow2 dump b3)"

# Add, remove, set bits and store: QEMU must see the same.
"$tool" bitmaps img.qcow2 add new1 4096
"$tool" bitmaps img.qcow2 add off 65536 disabled
"$tool" bitmaps img.qcow2 remove b2
"$tool" bitmaps img.qcow2 setbits b3 10485760 102400
qemu-img check -q img.qcow2
bitmaps_json img.qcow2 | sort > q.txt
diff -u - q.txt <<EOF2
b1 65536 auto
b3 65536
new1 4096 auto
off 65536
EOF2
"$tool" bitmaps img.qcow2 dump b3 > b3.txt
diff -u - b3.txt <<EOF2
10485760 131072
EOF2
# QEMU reads our data: merge b3 into a new bitmap and export it.
qemu-img bitmap --add img.qcow2 copy --disable
qemu-img bitmap --merge b3 img.qcow2 copy
"$tool" bitmaps img.qcow2 dump copy > copy.txt
diff -u b3.txt copy.txt

# Refusals: duplicate, bad granularity, bad name; nothing changes.
cp img.qcow2 before.qcow2
! "$tool" bitmaps img.qcow2 add b1 65536 2>/dev/null
! "$tool" bitmaps img.qcow2 add x 1000 2>/dev/null
! "$tool" bitmaps img.qcow2 remove nosuch 2>/dev/null
cmp img.qcow2 before.qcow2

# Marking in use as QEMU does on a read-write open.
"$tool" bitmaps img.qcow2 mark
bitmaps_json img.qcow2 | grep -c in-use | grep -qx 5
qemu-img check -q img.qcow2
! "$tool" bitmaps img.qcow2 dump b1 2>/dev/null
qemu-img bitmap --remove img.qcow2 b1
qemu-img check -q img.qcow2

# Writes through the library leave bitmaps alone and the image clean.
truncate -s 100M model.raw
qemu-img convert -O raw img.qcow2 model.raw
"$tool" random img.qcow2 model.raw 3 50
qemu-img check -q img.qcow2
qemu-img compare -q -f qcow2 -F raw img.qcow2 model.raw

# A v2 image cannot have bitmaps.
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 10M
! "$tool" bitmaps v2.qcow2 add b 65536 2>/dev/null
echo OK
